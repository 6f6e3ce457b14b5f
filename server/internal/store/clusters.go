package store

// Several clusters: platform databases live on the cluster named by their
// databases.placement. "default" is the cluster of Options.AdminURL (which
// also holds the metadata database); others are recorded in the clusters
// table by AddCluster (`bitd admin cluster add`).
//
// Credentials: a cluster's admin URL is stored without its password. bitd
// connects with the password a passfile gives for it (PGPASSFILE or
// ~/.pgpass, read by pgx), else with the password of its own admin URL
// (the same admin role and password on every cluster). AddCluster refuses
// a URL whose password differs from the default cluster's and that no
// passfile supplies, so nothing is stored that bitd could not use.
//
// Placement policy (ChoosePlacement): the active cluster with the fewest
// live platform databases; ties go to "default", then to the oldest
// cluster. Draining clusters take no new database; their databases stay
// until moved (MoveDatabase).
//
// Each non-default cluster gets a sibling Store (on): the same metadata
// pool, secret and settings, with that cluster's admin pool, so every
// provisioning, quota and drop method runs unchanged against it.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultCluster is the placement of databases on bitd's own cluster.
const DefaultCluster = "default"

// Cluster states.
const (
	ClusterActive   = "active"
	ClusterDraining = "draining"
)

// Cluster describes a cluster that holds platform databases.
type Cluster struct {
	Name string `json:"name"`
	// URL is the admin URL without password ("" for default: bitd's
	// --database-url).
	URL        string    `json:"url"`
	TenantAddr string    `json:"tenant_addr,omitempty"`
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	Databases  int       `json:"databases"`
}

// ClusterUnavailableError says a cluster holding the database cannot be
// reached (503 cluster_unavailable through apierr).
type ClusterUnavailableError = pgaddr.ClusterUnavailableError

func causeOf(err error) string { return pgaddr.Cause(err) }

// clusterSet caches the sibling Stores of non-default clusters.
type clusterSet struct {
	mu   sync.Mutex
	sibs map[string]*Store
}

var clusterName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

// on returns the Store whose admin pool is on cluster name ("" or
// DefaultCluster: s itself).
func (s *Store) on(ctx context.Context, name string) (*Store, error) {
	if s.root != nil {
		return s.root.on(ctx, name)
	}
	if name == "" || name == DefaultCluster {
		return s, nil
	}
	s.clusters.mu.Lock()
	sib := s.clusters.sibs[name]
	s.clusters.mu.Unlock()
	if sib != nil {
		return sib, nil
	}
	// Built outside the lock (a cluster that is down must not hold up
	// the others); a concurrent builder's sibling wins.
	sib, err := s.newSibling(ctx, name)
	if err != nil {
		return nil, err
	}
	s.clusters.mu.Lock()
	defer s.clusters.mu.Unlock()
	if other := s.clusters.sibs[name]; other != nil {
		sib.admin.Close()
		return other, nil
	}
	if s.clusters.sibs == nil {
		s.clusters.sibs = map[string]*Store{}
	}
	s.clusters.sibs[name] = sib
	return sib, nil
}

// newSibling opens the Store of cluster name (see on).
func (s *Store) newSibling(ctx context.Context, name string) (*Store, error) {
	var stored string
	err := s.DB.QueryRow(ctx, `SELECT admin_url FROM clusters WHERE name = $1`, name).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: cluster %q (see bitd admin cluster list)", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("look up cluster %q: %w", name, err)
	}
	connString, err := s.withPassword(stored)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %s", name, redactParseError(err))
	}
	cfg.MaxConns = 4
	cfg.ShouldPing = shouldPing
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	sib := &Store{DB: s.DB, admin: pool, adminCfg: cfg, metaName: s.metaName, secret: s.secret, connLimit: s.connLimit,
		maxDBs: s.maxDBs, log: s.log.With("cluster", name), tempLimit: s.tempLimit, root: s, clusterName: name}
	if s.tempLimit != "" {
		ok, _, err := sib.canSetTempFileLimit(ctx)
		if err != nil {
			pool.Close()
			return nil, &ClusterUnavailableError{Cluster: name, Err: err}
		}
		sib.tempLimitOK = ok
	}
	return sib, nil
}

// closeClusters closes the sibling Stores' admin pools.
func (s *Store) closeClusters() {
	s.clusters.mu.Lock()
	defer s.clusters.mu.Unlock()
	for _, sib := range s.clusters.sibs {
		sib.admin.Close()
	}
	s.clusters.sibs = nil
}

// withPassword returns stored (a URL without password) with the password
// bitd connects with: a passfile's (pgx reads it when the URL has none),
// else the default cluster admin's.
func (s *Store) withPassword(stored string) (string, error) {
	pc, err := pgconn.ParseConfig(stored)
	if err != nil {
		return "", errors.New(redactParseError(err))
	}
	if pc.Password != "" { // from a passfile
		return stored, nil
	}
	u, err := url.Parse(stored)
	if err != nil || u.User == nil {
		return "", errors.New("the stored cluster URL has no user name")
	}
	u.User = url.UserPassword(u.User.Username(), s.adminCfg.ConnConfig.Password)
	return u.String(), nil
}

// ClusterConnString returns the admin connection string of cluster name
// (with the password bitd uses: never log it) and its tenant address
// override ("" means found by pgaddr.Tenant). For DefaultCluster it
// returns "", "": the caller's own settings apply.
func (s *Store) ClusterConnString(ctx context.Context, name string) (connString, tenantAddr string, err error) {
	if name == "" || name == DefaultCluster {
		return "", "", nil
	}
	var stored string
	err = s.DB.QueryRow(ctx, `SELECT admin_url, tenant_addr FROM clusters WHERE name = $1`, name).Scan(&stored, &tenantAddr)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", fmt.Errorf("%w: cluster %q", ErrNotFound, name)
	}
	if err != nil {
		return "", "", fmt.Errorf("look up cluster %q: %w", name, err)
	}
	connString, err = s.withPassword(stored)
	return connString, tenantAddr, err
}

// PlacementOf returns the cluster that holds PostgreSQL database pgName
// (DefaultCluster for names the metadata store does not know).
func (s *Store) PlacementOf(ctx context.Context, pgName string) (string, error) {
	var p string
	err := s.DB.QueryRow(ctx, `SELECT placement FROM databases WHERE pg_name = $1`, pgName).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultCluster, nil
	}
	if err != nil {
		return "", fmt.Errorf("look up the cluster of a database: %w", err)
	}
	return p, nil
}

// AddCluster records cluster name at adminURL (a postgres:// URL of a
// superuser, or of a role with CREATEDB and CREATEROLE) after checking
// that bitd can log in to it and setting up the roles a locked-down
// cluster needs (bitkit_tenants, bitkit_admins). The password is not
// stored (see the top of this file). tenantAddr overrides where tenant
// roles connect ("" = found like for the default cluster). It returns the
// lockdown verdict of the new cluster.
func (s *Store) AddCluster(ctx context.Context, name, adminURL, tenantAddr string) (LockdownVerdict, error) {
	var v LockdownVerdict
	if !clusterName.MatchString(name) || name == DefaultCluster {
		return v, fmt.Errorf("invalid cluster name %q: use 1-40 lower-case letters, digits, '_' or '-', starting with a letter (not %q)", name, DefaultCluster)
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.User == nil || u.User.Username() == "" {
		return v, errors.New("the cluster URL must be a postgres://USER[:PASSWORD]@HOST:PORT/DATABASE URL naming the admin user")
	}
	pw, hasPW := u.User.Password()
	stripped := *u
	stripped.User = url.User(u.User.Username())
	storedURL := stripped.String()
	if hasPW && pw != s.adminCfg.ConnConfig.Password {
		pc, perr := pgconn.ParseConfig(storedURL)
		if perr != nil || pc.Password != pw {
			return v, errors.New("the cluster URL's password differs from bitd's own admin password and no passfile supplies it: " +
				"bitd stores cluster URLs without passwords, so give the admin role on every cluster the password of --database-url, " +
				"or put the password in a passfile (PGPASSFILE or ~/.pgpass) readable by every bitd")
		}
	}
	var exists bool
	if err := s.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM clusters WHERE name = $1)`, name).Scan(&exists); err != nil {
		return v, err
	}
	if exists {
		return v, fmt.Errorf("%w: cluster %q", ErrConflict, name)
	}
	// Check it connects, then set up its group roles, before recording it.
	connString, err := s.withPassword(storedURL)
	if err != nil {
		return v, err
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return v, errors.New(redactParseError(err))
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return v, err
	}
	sib := &Store{DB: s.DB, admin: pool, adminCfg: cfg, metaName: s.metaName, secret: s.secret, connLimit: s.connLimit,
		log: s.log, root: s, clusterName: name}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return v, fmt.Errorf("cannot log in to cluster %q as %q: %s", name, cfg.ConnConfig.User, causeOf(err))
	}
	var id1, id2 int64
	if s.admin.QueryRow(ctx, `SELECT system_identifier FROM pg_catalog.pg_control_system()`).Scan(&id1) == nil &&
		pool.QueryRow(ctx, `SELECT system_identifier FROM pg_catalog.pg_control_system()`).Scan(&id2) == nil && id1 == id2 {
		return v, fmt.Errorf("cluster %q is the default cluster itself (same system identifier): give the URL of another PostgreSQL cluster", name)
	}
	if err := sib.ensureGroupRoles(ctx); err != nil {
		return v, fmt.Errorf("set up roles on cluster %q: %w", name, err)
	}
	v = sib.CheckLockdown(ctx)
	_, err = s.DB.Exec(ctx, `INSERT INTO clusters (name, admin_url, tenant_addr) VALUES ($1, $2, $3)`, name, storedURL, tenantAddr)
	if isUniqueViolation(err) {
		return v, fmt.Errorf("%w: cluster %q", ErrConflict, name)
	}
	return v, err
}

// ListClusters lists the clusters with their live database counts, oldest
// first.
func (s *Store) ListClusters(ctx context.Context) ([]Cluster, error) {
	rows, err := s.DB.Query(ctx, `SELECT c.name, c.admin_url, c.tenant_addr, c.state, c.created_at,
			(SELECT count(*) FROM databases d WHERE d.placement = c.name AND d.deleted_at IS NULL)
		FROM clusters c ORDER BY c.name <> 'default', c.created_at, c.name`)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cluster, error) {
		var c Cluster
		err := r.Scan(&c.Name, &c.URL, &c.TenantAddr, &c.State, &c.CreatedAt, &c.Databases)
		return c, err
	})
}

// SetClusterState sets a cluster active or draining (a draining cluster
// takes no new database).
func (s *Store) SetClusterState(ctx context.Context, name, state string) error {
	if state != ClusterActive && state != ClusterDraining {
		return fmt.Errorf("invalid cluster state %q", state)
	}
	tag, err := s.DB.Exec(ctx, `UPDATE clusters SET state = $2 WHERE name = $1`, name, state)
	if err != nil {
		return fmt.Errorf("set cluster state: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: cluster %q", ErrNotFound, name)
	}
	return nil
}

// ChoosePlacement picks the cluster for a new database: the active one
// with the fewest live databases (ties: default, then the oldest). With no
// active cluster it answers an error saying so.
func (s *Store) ChoosePlacement(ctx context.Context) (string, error) {
	var name string
	err := s.DB.QueryRow(ctx, `SELECT c.name FROM clusters c WHERE c.state = 'active'
		ORDER BY (SELECT count(*) FROM databases d WHERE d.placement = c.name AND d.deleted_at IS NULL),
			c.name <> 'default', c.created_at, c.name LIMIT 1`).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errors.New("every PostgreSQL cluster is draining: no cluster takes new databases (bitd admin cluster list)")
	}
	if err != nil {
		return "", fmt.Errorf("choose a cluster: %w", err)
	}
	return name, nil
}

func pgconnUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// dropOn drops pgName's database and roles on cluster placement.
func (s *Store) dropOn(ctx context.Context, placement, pgName string) error {
	sib, err := s.on(ctx, placement)
	if err != nil {
		return err
	}
	return sib.dropPhysical(ctx, pgName)
}

// otherQuotaStates measures the live databases of the non-default
// clusters, one query per cluster. A cluster that cannot be reached is
// skipped (logged): its databases are measured at the next pass.
func (s *Store) otherQuotaStates(ctx context.Context) ([]QuotaState, error) {
	rows, err := s.DB.Query(ctx, `SELECT placement, id, pg_name, storage_limit_bytes FROM databases
		WHERE deleted_at IS NULL AND placement <> 'default' ORDER BY placement, pg_name`)
	if err != nil {
		return nil, fmt.Errorf("measure databases: %w", err)
	}
	type dbRow struct {
		placement string
		q         QuotaState
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dbRow, error) {
		var d dbRow
		err := r.Scan(&d.placement, &d.q.DatabaseID, &d.q.PGName, &d.q.LimitBytes)
		d.q.Placement = d.placement
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("measure databases: %w", err)
	}
	byCluster := map[string][]QuotaState{}
	var order []string
	for _, d := range list {
		if _, ok := byCluster[d.placement]; !ok {
			order = append(order, d.placement)
		}
		byCluster[d.placement] = append(byCluster[d.placement], d.q)
	}
	var out []QuotaState
	for _, c := range order {
		qs := byCluster[c]
		sib, err := s.on(ctx, c)
		if err != nil {
			s.log.Warn("cannot measure the databases of a cluster", "cluster", c, "err", err)
			continue
		}
		names := make([]string, len(qs))
		for i, q := range qs {
			names[i] = q.PGName
		}
		rows, err := sib.admin.Query(ctx, `SELECT datname, coalesce(pg_catalog.pg_database_size(oid), 0),
			pg_catalog.pg_get_userbyid(datdba) = datname || $2 FROM pg_catalog.pg_database WHERE datname = ANY ($1)`, names, FrozenSuffix)
		if err != nil {
			s.log.Warn("cannot measure the databases of a cluster; the next pass tries again", "cluster", c, "err", causeOf(err))
			continue
		}
		type size struct {
			n      int64
			frozen bool
		}
		sizes := map[string]size{}
		for rows.Next() {
			var n string
			var z size
			if err := rows.Scan(&n, &z.n, &z.frozen); err != nil {
				rows.Close()
				return nil, err
			}
			sizes[n] = z
		}
		rows.Close()
		if rows.Err() != nil {
			s.log.Warn("cannot measure the databases of a cluster; the next pass tries again", "cluster", c, "err", causeOf(rows.Err()))
			continue
		}
		for _, q := range qs {
			if z, ok := sizes[q.PGName]; ok {
				q.UsageBytes, q.Frozen = z.n, z.frozen
				out = append(out, q)
			}
		}
	}
	return out, nil
}

// onDatabase returns the Store of the cluster that holds live database id
// (s itself for the default cluster, or when id is unknown: the caller's
// own query then reports it) and its placement.
func (s *Store) onDatabase(ctx context.Context, id string) (*Store, string, error) {
	if s.root != nil {
		return s, s.clusterName, nil
	}
	var placement string
	err := s.DB.QueryRow(ctx, `SELECT placement FROM databases WHERE id = $1 AND deleted_at IS NULL`, id).Scan(&placement)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, DefaultCluster, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("look up database: %w", err)
	}
	sib, err := s.on(ctx, placement)
	return sib, placement, err
}

// quotaStateOn is QuotaState on a non-default cluster (s is its Store).
func (s *Store) quotaStateOn(ctx context.Context, placement, databaseID string) (QuotaState, error) {
	q := QuotaState{Placement: placement}
	if err := s.DB.QueryRow(ctx, `SELECT id, pg_name, storage_limit_bytes FROM databases WHERE id = $1 AND deleted_at IS NULL`,
		databaseID).Scan(&q.DatabaseID, &q.PGName, &q.LimitBytes); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return q, ErrNotFound
		}
		return q, err
	}
	err := s.admin.QueryRow(ctx, `SELECT coalesce(pg_catalog.pg_database_size(oid), 0), pg_catalog.pg_get_userbyid(datdba) = datname || $2
		FROM pg_catalog.pg_database WHERE datname = $1`, q.PGName, FrozenSuffix).Scan(&q.UsageBytes, &q.Frozen)
	if errors.Is(err, pgx.ErrNoRows) {
		return q, ErrNotFound
	}
	if err != nil && pgconnUnavailable(err) {
		return q, &ClusterUnavailableError{Cluster: placement, Err: err}
	}
	return q, err
}

// CheckClusters runs, for every cluster other than default, what Open and
// CheckLockdown do for the default one at start-up: the group roles a
// locked-down pg_hba.conf names, the lock-down probe (which logs its
// verdict) and the repairs (clusterrepair.go). A cluster that cannot be reached is logged, not returned:
// its databases answer cluster_unavailable until it is back.
func (s *Store) CheckClusters(ctx context.Context) {
	rows, err := s.DB.Query(ctx, `SELECT name FROM clusters WHERE name <> 'default' ORDER BY created_at, name`)
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		s.log.Warn("cannot list the PostgreSQL clusters", "err", err)
		return
	}
	for _, n := range names {
		// Group roles, lock-down probe and the start-up repairs
		// (clusterrepair.go); a cluster that fails stays pending and the
		// background pass tries it again.
		if err := s.checkCluster(ctx, n); err != nil {
			s.log.Warn("a PostgreSQL cluster that holds platform databases is unreachable or refused the set-up; its databases fail until it is back, and its start-up repairs run once it answers",
				"cluster", n, "err", causeOf(err))
		}
	}
}
