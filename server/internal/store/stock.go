package store

// Fast creation and deletion of platform databases.
//
// Creating a PostgreSQL database copies its template and takes from a few
// hundred milliseconds to seconds under load; creating its roles and grants
// adds a dozen statements. A platform database is named by a random id
// (newPGName), never by the tenant's name, and its roles by that id, so a
// database provisioned ahead of demand is indistinguishable from a fresh one
// once a metadata row points at it: nothing needs renaming, no connection
// can be open to it (provision closes its own), and the role passwords
// derive from the server secret and the role name alone.
//
// The stock is the table db_stock. Every provisioning, ahead of demand or
// for a caller when the stock is empty, first writes its row, then holds a
// row lock on it while it creates the database and roles, then in the same
// transaction either marks the row ready (the stock) or deletes it and
// inserts the databases row (a creation). A bitd killed mid-way leaves a row
// that is not ready and not locked: reclaimStock drops its objects. Handing
// out takes a ready row with FOR UPDATE SKIP LOCKED and inserts the
// databases row in the same transaction, so several replicas share one
// stock and a database is never handed out twice, nor lost.
//
// Every active (not draining) cluster has its own stock: a db_stock row
// names the cluster it was provisioned on (placement), a creation takes
// from the stock of the cluster ChoosePlacement chose, and the clean-up of
// rows left by a dead bitd drops their objects on their own cluster.
//
// The stock follows demand. Each cluster's target starts at --db-stock
// (BackgroundOptions.StockSize). A creation that finds its cluster's stock
// empty (a shortfall: it provisions while the caller waits) raises that
// cluster's target to one more than the larger of the target and the
// databases created on that cluster in the last minute, up to
// --db-stock-max (StockMax), so a burst of N creations raises the target
// to N, and the refill stocks N for the next burst. The target stays up
// while shortfalls keep coming and falls back to --db-stock once
// --db-stock-decay (StockDecay, 1 h) has passed without one; the stocked
// databases above the target are then dropped. The targets live in
// db_stock_targets, shared by replicas.
//
// Deleting marks the row deleted and reserves the name in one transaction
// and answers; the reaper drops the PostgreSQL database and roles and sets
// dropped_at. A row deleted but not dropped (bitd killed in between) is
// found again by the next pass of any replica.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultStockSize is the stock of `bitd serve` (--db-stock).
const DefaultStockSize = 4

// DefaultStockMax is the most a burst raises a cluster's stock target to
// (--db-stock-max).
const DefaultStockMax = 32

// DefaultStockDecay is how long a raised stock target stays up after the
// last shortfall (--db-stock-decay).
const DefaultStockDecay = time.Hour

// provisionSlots bounds the provisionings one bitd runs at once (the admin
// pool has four connections).
const provisionSlots = 4

// orphanAge is how old a row of db_stock that is neither ready nor locked
// must be before it is reclaimed: the provisioning bitd writes the row,
// then locks it a moment later.
const orphanAge = 10 * time.Second

// errStockEmpty: no ready database in the stock.
var errStockEmpty = errors.New("stock empty")

// background is the state of the stock and the reaper.
type background struct {
	once      sync.Once
	sem       chan struct{}
	kickStock chan struct{}
	kickReap  chan struct{}
	// reservation is Options.NameReservation.
	reservation time.Duration
	// stockSize, stockMax and stockDecay are BackgroundOptions.StockSize,
	// StockMax and StockDecay once started.
	stockSize  atomic.Int64
	stockMax   atomic.Int64
	stockDecay atomic.Int64 // nanoseconds
	// active: the stock fills (the store has had a database); a creation
	// that finds the stock empty before then is no shortfall.
	active atomic.Bool
	key    string
}

// bgState returns the stock's state, one per bitd: a sibling Store
// (another cluster) shares its root's, so provisionings on every cluster
// share one bound.
func (s *Store) bgState() *background {
	if s.root != nil {
		return s.root.bgState()
	}
	b := &s.bg
	b.once.Do(func() {
		b.sem = make(chan struct{}, provisionSlots)
		b.kickStock = make(chan struct{}, 1)
		b.kickReap = make(chan struct{}, 1)
		b.key = s.computeStockKey()
	})
	return b
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// computeStockKey names what a stocked database depends on: this build of
// bitd (the executable's hash: provisioning may change between builds) and
// the settings provision applies (role connection limit, temp_file_limit).
func (s *Store) computeStockKey() string {
	h := sha256.New()
	if exe, err := os.Executable(); err == nil {
		if f, err := os.Open(exe); err == nil {
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				h.Write([]byte(time.Now().String())) // unknown build: never shared
			}
		}
	} else {
		h.Write([]byte(time.Now().String()))
	}
	fmt.Fprintf(h, "\x00%d\x00%s", s.connLimit, s.tempLimit)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// reservationPeriod is how long a deleted name stays reserved (0: not at
// all).
func (s *Store) reservationPeriod() time.Duration {
	switch r := s.bg.reservation; {
	case r == 0:
		return ReservationPeriod
	case r < 0:
		return 0
	default:
		return r
	}
}

// CreateDatabase creates a platform database in accountID: it hands out a
// database from the stock when there is one (milliseconds), else provisions
// one (provision: a real PostgreSQL database named by a random id, CONNECT
// revoked from PUBLIC, login roles with passwords derived from the server
// secret), and records the metadata in the same transaction that takes it
// from the stock. Name conflicts are ErrConflict, reserved names
// *ReservedError, a full account *TooManyDatabasesError.
func (s *Store) CreateDatabase(ctx context.Context, accountID, name string, isPrivate bool, limit int64) (*Database, error) {
	if len(s.secret) < 32 {
		return nil, errors.New("store: no server secret (Options.Secret, at least 32 bytes): role passwords derive from it and would be guessable")
	}
	if err := s.CheckNameFree(ctx, accountID, name, ""); err != nil {
		return nil, err
	}
	if err := s.checkDatabaseCap(ctx, s.DB, accountID, false); err != nil {
		return nil, err // before any provisioning; checked again below
	}
	placement, err := s.ChoosePlacement(ctx) // clusters.go
	if err != nil {
		return nil, err
	}
	record := func(tx pgx.Tx, pgName string) (string, error) {
		if err := s.checkReservation(ctx, tx, accountID, name); err != nil {
			return "", err
		}
		if err := s.checkDatabaseCap(ctx, tx, accountID, true); err != nil {
			return "", err
		}
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO databases (account_id, name, pg_name, is_private, storage_limit_bytes, placement)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, accountID, name, pgName, isPrivate, limit, placement).Scan(&id)
		return id, err
	}
	b := s.bgState()
	var id string
	if placement != DefaultCluster {
		var sib *Store
		if sib, err = s.on(ctx, placement); err == nil {
			// Ask first: provisioning's errors do not keep their cause
			// (scrub), and a stocked database of a cluster that is down
			// would not answer either.
			if perr := sib.admin.Ping(ctx); perr != nil {
				err = &ClusterUnavailableError{Cluster: placement, Err: perr}
			} else {
				id, err = sib.takeOrProvision(ctx, record)
			}
		}
		var ce *ClusterUnavailableError
		if errors.As(err, &ce) {
			// Creations keep working while a cluster is down: on the
			// default cluster instead.
			s.log.Warn("the cluster chosen for a new database is unreachable; creating it on the default cluster", "cluster", placement, "err", causeOf(err))
			placement = DefaultCluster
		}
	}
	if placement == DefaultCluster {
		id, err = s.takeOrProvision(ctx, record)
	}
	kick(b.kickStock)
	if err != nil {
		if isUniqueViolation(err) {
			return nil, ErrConflict
		}
		var re *ReservedError
		var te *TooManyDatabasesError
		if errors.As(err, &re) || errors.As(err, &te) {
			return nil, err
		}
		return nil, fmt.Errorf("create database: %w", err)
	}
	return s.databaseByID(ctx, id)
}

// placement is the name of the cluster s provisions on.
func (s *Store) placement() string {
	if s.clusterName == "" {
		return DefaultCluster
	}
	return s.clusterName
}

// takeOrProvision hands out a database of the stock of s's cluster, or,
// when that stock is empty, records the shortfall (which raises the
// cluster's stock target) and provisions one there while the caller waits.
// A cluster that cannot be reached while provisioning answers a
// *ClusterUnavailableError.
func (s *Store) takeOrProvision(ctx context.Context, record func(tx pgx.Tx, pgName string) (string, error)) (string, error) {
	id, err := s.handOut(ctx, record)
	if !errors.Is(err, errStockEmpty) {
		return id, err
	}
	s.noteShortfall(ctx)
	id, err = s.provisionTracked(ctx, func(tx pgx.Tx, pgName string) (string, error) {
		if _, err := tx.Exec(ctx, `DELETE FROM db_stock WHERE pg_name = $1`, pgName); err != nil {
			return "", err
		}
		return record(tx, pgName)
	})
	if err != nil && s.root != nil && pgconnUnavailable(err) {
		return "", &ClusterUnavailableError{Cluster: s.clusterName, Err: err}
	}
	return id, err
}

// demandWindow is how far back noteShortfall counts the creations on a
// cluster: a burst's size.
const demandWindow = time.Minute

// noteShortfall raises the stock target of s's cluster to one more than
// the larger of its target and the databases created there in the last
// demandWindow (at most to the stock's maximum), and records when: a
// creation found the stock empty. A burst thus leaves the target at its
// own size, and the refill stocks that many for the next one.
// Nothing is recorded when there is no stock (--db-stock 0) or it may not
// grow (--db-stock-max not above --db-stock).
func (s *Store) noteShortfall(ctx context.Context) {
	b := s.bgState()
	size, most := b.stockSize.Load(), b.stockMax.Load()
	if size <= 0 || most <= size || !b.active.Load() {
		return
	}
	// EXCLUDED.target - 1 is the larger of --db-stock and the recent
	// demand (unless capped).
	_, err := s.DB.Exec(ctx, `INSERT INTO db_stock_targets AS t (placement, target, shortfall_at)
		VALUES ($1, least(greatest($2, (SELECT count(*) FROM databases WHERE placement = $1
			AND created_at > now() - make_interval(secs => $5))::int) + 1, $3), now())
		ON CONFLICT (placement) DO UPDATE SET shortfall_at = now(),
			target = least(greatest(CASE WHEN t.shortfall_at > now() - make_interval(secs => $4) THEN t.target ELSE $2 END, $2, EXCLUDED.target - 1) + 1, $3)`,
		s.placement(), size, most, time.Duration(b.stockDecay.Load()).Seconds(), demandWindow.Seconds())
	if err != nil && ctx.Err() == nil {
		s.log.Warn("cannot record that the database stock ran short", "err", err)
	}
}

// stockTarget is the stock target of cluster placement: --db-stock, or
// more while a recent burst has raised it (noteShortfall).
func (s *Store) stockTarget(ctx context.Context, placement string) (int, error) {
	b := s.bgState()
	size, most := int(b.stockSize.Load()), int(b.stockMax.Load())
	var raised int
	err := s.DB.QueryRow(ctx, `SELECT target FROM db_stock_targets WHERE placement = $1
		AND shortfall_at > now() - make_interval(secs => $2)`, placement, time.Duration(b.stockDecay.Load()).Seconds()).Scan(&raised)
	if errors.Is(err, pgx.ErrNoRows) {
		return size, nil
	}
	if err != nil {
		return size, err
	}
	return max(size, min(raised, most)), nil
}

// handOut takes the oldest ready database of the stock of s's cluster and
// calls record in the same transaction. errStockEmpty when there is none.
func (s *Store) handOut(ctx context.Context, record func(tx pgx.Tx, pgName string) (string, error)) (string, error) {
	b := s.bgState()
	var id string
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var pgName string
		err := tx.QueryRow(ctx, `DELETE FROM db_stock WHERE pg_name = (SELECT pg_name FROM db_stock
			WHERE ready AND stock_key = $1 AND placement = $2 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING pg_name`,
			b.key, s.placement()).Scan(&pgName)
		if errors.Is(err, pgx.ErrNoRows) {
			return errStockEmpty
		}
		if err != nil {
			return fmt.Errorf("take a database from the stock: %w", err)
		}
		id, err = record(tx, pgName)
		return err
	})
	return id, err
}

// provisionTracked provisions a new PostgreSQL database under a db_stock
// row it holds locked, then calls finish in the transaction that holds the
// lock. When provisioning fails, what was created is dropped; when finish
// fails, the database joins the stock if there is one (it is as good as
// any), else it is dropped.
func (s *Store) provisionTracked(ctx context.Context, finish func(tx pgx.Tx, pgName string) (string, error)) (string, error) {
	b := s.bgState()
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-b.sem }()
	// One connection for the row and its lock: the row is committed (other
	// replicas must see it) and locked a round trip later.
	conn, err := s.DB.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("record a database being provisioned: %w", err)
	}
	defer conn.Release()
	pgName := newPGName()
	if _, err := conn.Exec(ctx, `INSERT INTO db_stock (pg_name, stock_key, placement) VALUES ($1, $2, $3)`, pgName, b.key, s.placement()); err != nil {
		return "", fmt.Errorf("record a database being provisioned: %w", err)
	}
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.dropPhysical(cctx, pgName); err != nil {
			s.log.Warn("a database whose provisioning failed could not be dropped; the stock logic tries again", "database", pgName, "err", err)
			return
		}
		if _, err := s.DB.Exec(cctx, `DELETE FROM db_stock WHERE pg_name = $1`, pgName); err != nil {
			s.log.Warn("could not forget a database whose provisioning failed", "database", pgName, "err", err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		cleanup()
		return "", fmt.Errorf("lock a database being provisioned: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var one int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM db_stock WHERE pg_name = $1 FOR UPDATE`, pgName).Scan(&one); err != nil {
		return "", fmt.Errorf("lock a database being provisioned: %w", err)
	}
	if err := s.provision(ctx, pgName); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		cleanup()
		return "", err
	}
	id, err := finish(tx, pgName)
	if err == nil {
		err = tx.Commit(ctx)
		if err == nil {
			return id, nil
		}
	}
	_ = tx.Rollback(context.WithoutCancel(ctx))
	kctx := context.WithoutCancel(ctx)
	// A commit whose answer was lost may have succeeded: never drop a
	// database a row points at.
	var recorded bool
	if cerr := s.DB.QueryRow(kctx, `SELECT EXISTS (SELECT 1 FROM databases WHERE pg_name = $1)`, pgName).Scan(&recorded); cerr != nil || recorded {
		return "", err
	}
	if b.stockSize.Load() > 0 {
		if _, kerr := s.DB.Exec(kctx, `UPDATE db_stock SET ready = true WHERE pg_name = $1`, pgName); kerr == nil {
			return "", err
		}
	}
	cleanup()
	return "", err
}

// BackgroundOptions configure StartBackground.
type BackgroundOptions struct {
	// StockSize is how many provisioned databases to keep ready on each
	// active cluster (0: none; creations then provision while the caller
	// waits). The stock starts filling once the metadata store has had a
	// database (a fresh throw-away instance that never creates one
	// provisions nothing).
	StockSize int
	// StockMax is the most a burst of creations raises a cluster's stock
	// target to (0: DefaultStockMax; not above StockSize: the target never
	// moves).
	StockMax int
	// StockDecay is how long a raised target stays up after the last
	// shortfall (0: DefaultStockDecay).
	StockDecay time.Duration
	// Interval is how often the stock and the reaper look for work other
	// replicas left (default 30 s); this bitd's own creations and deletes
	// wake them at once.
	Interval time.Duration
}

// StartBackground starts the stock refill and the reaper of deleted
// databases. stop ends them, waiting for a provisioning or drop under way.
func (s *Store) StartBackground(ctx context.Context, o BackgroundOptions) (stop func()) {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.StockMax == 0 {
		o.StockMax = DefaultStockMax
	}
	if o.StockDecay <= 0 {
		o.StockDecay = DefaultStockDecay
	}
	b := s.bgState()
	b.stockSize.Store(int64(o.StockSize))
	b.stockMax.Store(int64(o.StockMax))
	b.stockDecay.Store(int64(o.StockDecay))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.stockLoop(ctx, o)
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			s.reapDeleted(ctx)
			select {
			case <-ctx.Done():
				return
			case <-b.kickReap:
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (s *Store) stockLoop(ctx context.Context, o BackgroundOptions) {
	b := s.bgState()
	active := false
	if o.StockSize > 0 {
		if err := s.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM databases) OR EXISTS (SELECT 1 FROM db_stock)`).Scan(&active); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot check whether to fill the database stock", "err", err)
		}
	}
	b.active.Store(active)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		s.reclaimStock(ctx)
		s.repairPendingClusters(ctx) // clusterrepair.go: the start-up repairs of clusters that were down
		if active && o.StockSize > 0 {
			s.refillAll(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-b.kickStock:
			active = true
			b.active.Store(true)
		case <-t.C:
		}
	}
}

// refillAll refills the stock of every active cluster, the clusters side
// by side (each one provisioning at a time, all within the provisioning
// bound), so a cluster that is down or slow holds up no other.
func (s *Store) refillAll(ctx context.Context) {
	rows, err := s.DB.Query(ctx, `SELECT name FROM clusters WHERE state = 'active' ORDER BY name <> 'default', created_at, name`)
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot list the clusters to fill their database stock", "err", err)
		}
		return
	}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			on, err := s.on(ctx, n)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("cannot fill the database stock of a cluster; trying again later", "cluster", n, "err", causeOf(err))
				}
				return
			}
			on.refill(ctx)
		})
	}
	wg.Wait()
}

// refill provisions databases on s's cluster until its stock (ready or
// being provisioned, by any replica) holds the cluster's target
// (stockTarget), or drops ready ones above it.
func (s *Store) refill(ctx context.Context) {
	b := s.bgState()
	for ctx.Err() == nil {
		size, err := s.stockTarget(ctx, s.placement())
		var n, ready int
		if err == nil {
			err = s.DB.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE ready) FROM db_stock WHERE stock_key = $1 AND placement = $2`,
				b.key, s.placement()).Scan(&n, &ready)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("cannot count the database stock", "cluster", s.placement(), "err", err)
			}
			return
		}
		if ready > size {
			if !s.trimStock(ctx) {
				return
			}
			continue
		}
		if n >= size {
			return
		}
		_, err = s.provisionTracked(ctx, func(tx pgx.Tx, pgName string) (string, error) {
			_, err := tx.Exec(ctx, `UPDATE db_stock SET ready = true WHERE pg_name = $1`, pgName)
			return "", err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("cannot provision a database for the stock; trying again later", "cluster", s.placement(), "err", causeOf(err))
			}
			return
		}
	}
}

// trimStock drops the newest ready database of the stock of s's cluster
// (the target fell back), and reports whether it did.
func (s *Store) trimStock(ctx context.Context) bool {
	b := s.bgState()
	dropped := false
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var pgName string
		err := tx.QueryRow(ctx, `SELECT pg_name FROM db_stock WHERE ready AND stock_key = $1 AND placement = $2
			ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED`, b.key, s.placement()).Scan(&pgName)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.dropPhysical(ctx, pgName); err != nil {
			return fmt.Errorf("drop %s: %w", pgName, err)
		}
		_, err = tx.Exec(ctx, `DELETE FROM db_stock WHERE pg_name = $1`, pgName)
		dropped = err == nil
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("cannot drop a stocked database above the stock target; trying again later", "cluster", s.placement(), "err", causeOf(err))
	}
	return err == nil && dropped
}

// reclaimStock drops, on whichever cluster holds them, the objects of
// db_stock rows left by a bitd that died while provisioning (not ready, not
// locked, older than orphanAge), of ready rows another build or other
// settings provisioned, and of ready rows on a draining cluster. A row
// whose cluster cannot be reached is left for a later pass.
func (s *Store) reclaimStock(ctx context.Context) {
	b := s.bgState()
	failed := []string{}
	for ctx.Err() == nil {
		done := true
		err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
			var pgName, placement, why string
			err := tx.QueryRow(ctx, `SELECT pg_name, placement, CASE WHEN NOT ready THEN 'left by a bitd that stopped while provisioning it'
					WHEN stock_key <> $1 THEN 'provisioned by another build of bitd or with other settings'
					ELSE 'kept on a cluster that is draining' END FROM db_stock
				WHERE ((NOT ready AND created_at < now() - make_interval(secs => $2)) OR (ready AND stock_key <> $1)
					OR (ready AND placement IN (SELECT name FROM clusters WHERE state = 'draining')))
				AND NOT EXISTS (SELECT 1 FROM databases d WHERE d.pg_name = db_stock.pg_name)
				AND pg_name <> ALL ($3)
				ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED`, b.key, orphanAge.Seconds(), failed).Scan(&pgName, &placement, &why)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			done = false
			if err := s.dropOn(ctx, placement, pgName); err != nil {
				failed = append(failed, pgName)
				if ctx.Err() == nil {
					s.log.Warn("cannot reclaim a stocked database; trying again later", "cluster", placement, "database", pgName, "err", causeOf(err))
				}
				return nil
			}
			if _, err := tx.Exec(ctx, `DELETE FROM db_stock WHERE pg_name = $1`, pgName); err != nil {
				return err
			}
			s.log.Info("reclaimed a stocked database "+why, "cluster", placement, "database", pgName)
			return nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("cannot reclaim a stocked database; trying again later", "err", err)
			}
			return
		}
		if done {
			return
		}
	}
}

// StockCount returns the ready databases in the stocks (every cluster's)
// of this build and settings, and the rows being provisioned (by anyone).
func (s *Store) StockCount(ctx context.Context) (ready, pending int, err error) {
	b := s.bgState()
	err = s.DB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE ready AND stock_key = $1), count(*) FILTER (WHERE NOT ready) FROM db_stock`, b.key).Scan(&ready, &pending)
	return ready, pending, err
}

// markDeleted marks database d deleted and reserves its name for the
// reservation period, in one transaction that announces the access change.
func (s *Store) markDeleted(ctx context.Context, d *Database) (reservedUntil time.Time, err error) {
	period := s.reservationPeriod()
	err = s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		tag, err := tx.Exec(ctx, `UPDATE databases SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL`, d.ID)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, ErrNotFound
		}
		if period <= 0 {
			return []string{DBTag(d.ID)}, nil
		}
		return []string{DBTag(d.ID)}, tx.QueryRow(ctx, `INSERT INTO name_reservations (account_id, name_lower, reserved_until)
			VALUES ($1, lower($2), now() + make_interval(secs => $3))
			ON CONFLICT (account_id, name_lower) DO UPDATE SET reserved_until = EXCLUDED.reserved_until
			RETURNING reserved_until`, d.AccountID, d.Name, period.Seconds()).Scan(&reservedUntil)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return time.Time{}, err
		}
		return time.Time{}, fmt.Errorf("delete database: %w", err)
	}
	return reservedUntil, nil
}

// DeleteDatabase marks the database deleted, reserves its name (zero
// reservedUntil when names are not reserved), and drops the PostgreSQL
// database and roles before it returns. The caller closes pools and relayed
// sessions first. bitd's API uses DeleteDatabaseInBackground.
func (s *Store) DeleteDatabase(ctx context.Context, d *Database) (reservedUntil time.Time, err error) {
	reservedUntil, err = s.markDeleted(ctx, d)
	if err != nil {
		return reservedUntil, err
	}
	// The metadata row says deleted: finish the physical drop even if the
	// caller's request is cancelled now (the reaper would otherwise).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := s.dropOn(dctx, d.Placement, d.PGName); err != nil {
		return reservedUntil, err
	}
	if _, err := s.DB.Exec(dctx, `UPDATE databases SET dropped_at = now() WHERE id = $1`, d.ID); err != nil {
		s.log.Warn("could not record a finished drop; the reaper repeats it", "database", d.PGName, "err", err)
	}
	return reservedUntil, nil
}

// DeleteDatabaseInBackground marks the database deleted and reserves its
// name, like DeleteDatabase, and leaves the drop of the PostgreSQL database
// and roles to the reaper (StartBackground), which it wakes. The drop is
// durable: the row says deleted but not dropped until it is done, and any
// replica's reaper finishes it, after a crash too.
func (s *Store) DeleteDatabaseInBackground(ctx context.Context, d *Database) (reservedUntil time.Time, err error) {
	reservedUntil, err = s.markDeleted(ctx, d)
	if err == nil {
		kick(s.bgState().kickReap)
	}
	return reservedUntil, err
}

// reapDeleted drops the PostgreSQL objects of deleted databases not yet
// dropped, one row lock at a time (replicas share the work). A drop that
// fails is logged and retried on the next pass.
func (s *Store) reapDeleted(ctx context.Context) {
	failed := []string{}
	for ctx.Err() == nil {
		done := true
		err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
			var id, pgName, placement string
			err := tx.QueryRow(ctx, `SELECT id, pg_name, placement FROM databases WHERE deleted_at IS NOT NULL AND dropped_at IS NULL
				AND id <> ALL($1) ORDER BY deleted_at LIMIT 1 FOR UPDATE SKIP LOCKED`, failed).Scan(&id, &pgName, &placement)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			done = false
			if err := s.dropOn(ctx, placement, pgName); err != nil {
				failed = append(failed, id)
				if ctx.Err() == nil {
					s.log.Warn("dropping a deleted database failed; trying again later", "database", pgName, "err", err)
				}
				return nil
			}
			_, err = tx.Exec(ctx, `UPDATE databases SET dropped_at = now() WHERE id = $1`, id)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("cannot drop deleted databases; trying again later", "err", err)
			}
			return
		}
		if done {
			return
		}
	}
}

// ReleaseName ends the reservation of the deleted name account/name at
// once. ErrNotFound when the account does not exist or the name is not
// reserved.
func (s *Store) ReleaseName(ctx context.Context, account, name string) (wasUntil time.Time, err error) {
	err = s.DB.QueryRow(ctx, `DELETE FROM name_reservations r USING accounts a
		WHERE a.id = r.account_id AND lower(a.name) = lower($1) AND r.name_lower = lower($2) AND r.reserved_until > now()
		RETURNING r.reserved_until`, account, name).Scan(&wasUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, ErrNotFound
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("release name: %w", err)
	}
	return wasUntil, nil
}
