// Package pgpool keeps bitd's connection pools to the platform databases: one
// pgxpool per (PostgreSQL database, login role), created lazily on first use.
//
// Every pool it builds:
//   - logs in as the role with the password derived from the server secret
//     (secret.RolePassword), never a stored one;
//   - starts empty (MinConns 0), closes connections idle for IdleTimeout and
//     health-checks idle connections;
//   - cancels the backend when a query's context ends: a cancelled or
//     timed-out context sends a PostgreSQL CancelRequest (the semantics of
//     pg_cancel_backend), with a closed socket as the fallback when the server
//     does not answer;
//   - resets the session before a connection goes back to the pool: a
//     connection whose transaction status is not idle is destroyed (pgxpool
//     does this), otherwise DISCARD ALL runs (it drops SET values, temporary
//     tables, prepared statements, cursors, LISTENs and advisory locks); a
//     connection on which that fails, or that failed fatally, is destroyed.
//     The query path sends the DISCARD ALL right behind its statement
//     (QueueReset, FinishReset: reset.go), so the reset costs no round trip.
//
// While RefuseCopyIn is on for a connection, a statement that puts it into
// COPY FROM STDIN mode (which the HTTP API cannot feed) closes it at once
// instead of holding it until the timeout; CopyInRefused reports it.
//
// A login role may change its own password and session defaults (ALTER ROLE
// CURRENT_USER PASSWORD … / SET …): no privilege stops it, and a reader of a
// public database could so lock every other caller out. Every pool heals
// that: a connection whose start-up fails (a changed password) marks its
// role, and the next connection attempt first resets it; a new connection
// that finds per-role settings (pg_db_role_setting) resets them and is
// discarded. Resetting runs as the ConnString's (admin) user: ALTER ROLE …
// RESET ALL, in every database too, and the derived password again, sent
// as a SCRAM verifier so its plaintext never reaches the server. The
// request that met the damage fails once with an error; later ones work.
//
// Because DISCARD ALL drops server-side prepared statements, pools use
// pgx.QueryExecModeDescribeExec (an unnamed statement per query) and no
// statement cache.
//
// The number of pools is bounded (MaxPools); when a new pool would exceed it,
// the least recently used pools with no connection in use are closed.
//
// With a Budget, every connection a pool opens takes a slot of the budget
// before it dials and gives it back when its socket closes, whatever ends
// it (a failed start-up, AfterConnect refusing it, the pool destroying it);
// a refused slot fails the Acquire with the budget's *connbudget.Error.
// ReleaseIdle (the budget's Reclaimer) closes idle connections at once.
//
// A Manager is safe for concurrent use.
package pgpool

import (
	"context"
	"errors"
	"fmt"
	"github.com/bitkit-dev/bitkit/internal/pgalive"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/connbudget"
	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Config's zero values.
const (
	DefaultMaxConnsPerPool = 10
	DefaultIdleTimeout     = 60 * time.Second
	DefaultMaxPools        = 200
	// resetTimeout bounds DISCARD ALL when a connection is released.
	resetTimeout = 5 * time.Second
)

// Config configures a Manager.
type Config struct {
	// ConnString is a URL or DSN of the cluster (normally the admin URL);
	// its user, password and database are replaced for every pool. Other
	// settings (sslmode, timeouts, …) are kept; the host and port are
	// TenantAddr's. Role repairs connect with it unchanged.
	ConnString string
	// TenantAddr is where pools connect as tenant roles: "host:port", or
	// "/socket/dir:port" for a Unix socket (pgaddr.Addr.String). "" means
	// pgaddr.Tenant(ConnString, ""), resolved by the first Pool call: the
	// cluster's Unix socket when ConnString's host is loopback (a
	// locked-down cluster rejects tenant roles over TCP), else
	// ConnString's host and port.
	TenantAddr string
	// Secret is the server secret role passwords are derived from.
	Secret []byte
	// MaxConnsPerPool bounds each pool; 0 means DefaultMaxConnsPerPool (10).
	MaxConnsPerPool int32
	// IdleTimeout closes connections idle that long; 0 means 60s.
	IdleTimeout time.Duration
	// MaxPools bounds the number of open pools; 0 means DefaultMaxPools (200).
	MaxPools int
	// Logger receives pool events; nil means slog.Default().
	Logger *slog.Logger
	// Budget, when set, bounds the connections of every pool together
	// (see the package comment); nil means no bound beyond MaxConnsPerPool.
	Budget *connbudget.Budget
	// TestSignals, when set, lets tests observe the pools' connections.
	TestSignals *TestSignals
	// Clusters, when set, says which PostgreSQL cluster holds each
	// database (bitd with several clusters): pools of databases on a
	// cluster other than "default" connect, and repair roles, there;
	// ConnString and TenantAddr are the default cluster's. A connection
	// that cannot reach such a cluster fails with a
	// *pgaddr.ClusterUnavailableError naming it.
	Clusters Placer
}

// Placer says where platform databases live (store.Store implements it).
type Placer interface {
	// PlacementOf returns the cluster holding pgDatabase ("default" for
	// the ConnString's cluster).
	PlacementOf(ctx context.Context, pgDatabase string) (string, error)
	// ClusterConnString returns the admin connection string of a cluster
	// other than "default" and its tenant address override ("" = find it
	// as for the default cluster).
	ClusterConnString(ctx context.Context, name string) (connString, tenantAddr string, err error)
}

// DefaultCluster is the placement of databases on ConnString's cluster.
const DefaultCluster = "default"

// clusterConn is how pools reach one non-default cluster.
type clusterConn struct {
	base   *pgxpool.Config
	tenant pgaddr.Addr
	// acquiring counts the callers inside an Acquire of its pools.
	acquiring acquireCounter
}

// TestSignals lets tests observe a Manager's connections; production
// leaves Config.TestSignals nil.
type TestSignals struct {
	// Writes counts what the pools' connections sent to PostgreSQL, one
	// per write: a round trip needs one.
	Writes atomic.Int64
}

type key struct{ db, role string }

type entry struct {
	pool     *pgxpool.Pool
	lastUsed time.Time
	cluster  string // "" for the default cluster
}

// Manager owns the pools. Create it with New and Close it when done.
type Manager struct {
	cfg    Config
	base   *pgxpool.Config
	err    error // ConnString parse error, reported by Pool
	mu     sync.Mutex
	pools  map[key]*entry
	closed bool
	// suspect holds roles whose connection start-up failed: the next
	// connection attempt resets them first (see repairRole).
	suspect map[key]bool
	// tenant is TenantAddr parsed or resolved (tenantMu guards the
	// first resolution; Host "" until then).
	tenantMu sync.Mutex
	tenant   pgaddr.Addr
	// acquiring counts the callers inside a pool's Acquire now (Stats).
	acquiring acquireCounter
	// clusters are the non-default clusters met so far (Config.Clusters),
	// guarded by tenantMu.
	clusters map[string]*clusterConn
}

// New returns a Manager. It does not connect; a malformed ConnString is
// reported by the first Pool call.
func New(cfg Config) *Manager {
	if cfg.MaxConnsPerPool <= 0 {
		cfg.MaxConnsPerPool = DefaultMaxConnsPerPool
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxPools <= 0 {
		cfg.MaxPools = DefaultMaxPools
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{cfg: cfg, pools: map[key]*entry{}, suspect: map[key]bool{}}
	m.base, m.err = pgxpool.ParseConfig(cfg.ConnString)
	if m.err != nil {
		// pgconn's parse errors never include the password.
		m.err = fmt.Errorf("pgpool: parse cluster connection string: %w", m.err)
	} else if cfg.TenantAddr != "" {
		if m.tenant, m.err = pgaddr.Parse(cfg.TenantAddr, m.base.ConnConfig.Port); m.err != nil {
			m.err = fmt.Errorf("pgpool: TenantAddr %w", m.err)
		}
	}
	return m
}

// tenantAddr returns where pools connect as tenant roles, resolving it on
// first use when Config.TenantAddr is "".
func (m *Manager) tenantAddr(ctx context.Context) (pgaddr.Addr, error) {
	m.tenantMu.Lock()
	defer m.tenantMu.Unlock()
	if m.tenant.Host != "" {
		return m.tenant, nil
	}
	a, err := pgaddr.Tenant(ctx, m.cfg.ConnString, "")
	if err != nil {
		return a, fmt.Errorf("pgpool: find how to reach PostgreSQL: %w", err)
	}
	m.cfg.Logger.Debug("pgpool: tenant roles connect to "+a.String(), "why", a.Why)
	m.tenant = a
	return a, nil
}

// Pool returns the pool for (pgDatabase, pgRole), creating it on first use.
// It does not connect (the first Acquire does), except that the first call
// of a Manager without Config.TenantAddr connects once as the admin to find
// the cluster's Unix socket. The pool stays owned by the Manager: callers
// never close it.
func (m *Manager) Pool(ctx context.Context, pgDatabase, pgRole string) (*pgxpool.Pool, error) {
	return m.PoolOn(ctx, "", pgDatabase, pgRole)
}

// PoolOn is Pool for a database known to be on cluster ("" means: ask
// Config.Clusters, one metadata query, when there is one). A pool of the
// database made for another cluster (before the database moved) is
// replaced.
func (m *Manager) PoolOn(ctx context.Context, cluster, pgDatabase, pgRole string) (*pgxpool.Pool, error) {
	if m.err != nil {
		return nil, m.err
	}
	if pgDatabase == "" || pgRole == "" {
		return nil, errors.New("pgpool: database and role must not be empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgpool: %w", err)
	}
	k := key{pgDatabase, pgRole}
	if cluster == "" && m.cfg.Clusters != nil {
		c, err := m.cfg.Clusters.PlacementOf(ctx, pgDatabase)
		if err != nil {
			return nil, fmt.Errorf("pgpool: %w", err)
		}
		cluster = c
	}
	if cluster == DefaultCluster || m.cfg.Clusters == nil {
		cluster = ""
	}
	m.mu.Lock()
	if e, ok := m.pools[k]; ok && !m.closed && e.cluster == cluster {
		e.lastUsed = time.Now()
		m.mu.Unlock()
		return e.pool, nil
	}
	m.mu.Unlock()
	base, tenant, counter, err := m.clusterBase(ctx, cluster)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("pgpool: manager is closed")
	}
	var stale *pgxpool.Pool
	if e, ok := m.pools[k]; ok {
		if e.cluster == cluster {
			e.lastUsed = time.Now()
			m.mu.Unlock()
			return e.pool, nil
		}
		stale = e.pool // the database moved: its connections go to the old cluster
		delete(m.pools, k)
	}
	p, err := pgxpool.NewWithConfig(context.Background(), m.poolConfig(pgDatabase, pgRole, tenant, base, cluster, counter))
	if err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("pgpool: create pool for database %q role %q: %w", pgDatabase, pgRole, err)
	}
	m.pools[k] = &entry{pool: p, lastUsed: time.Now(), cluster: cluster}
	if stale != nil {
		go stale.Close()
	}
	evicted := m.evictLocked(k)
	m.mu.Unlock()
	for _, e := range evicted {
		go e.Close() // idle now; never make this caller wait for a late user
	}
	return p, nil
}

// evictLocked removes the least recently used unused pools above MaxPools
// and returns them for closing outside the lock.
func (m *Manager) evictLocked(keep key) []*pgxpool.Pool {
	over := len(m.pools) - m.cfg.MaxPools
	if over <= 0 {
		return nil
	}
	type cand struct {
		k key
		e *entry
	}
	var cands []cand
	for k, e := range m.pools {
		if k != keep && e.pool.Stat().AcquiredConns() == 0 {
			cands = append(cands, cand{k, e})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].e.lastUsed.Before(cands[j].e.lastUsed) })
	var out []*pgxpool.Pool
	for _, c := range cands {
		if over == 0 {
			break
		}
		delete(m.pools, c.k)
		out = append(out, c.e.pool)
		over--
		m.cfg.Logger.Debug("pgpool: closing least recently used pool", "database", c.k.db, "role", c.k.role)
	}
	return out
}

// clusterBase returns the base config and tenant address of cluster (""
// for the default one).
func (m *Manager) clusterBase(ctx context.Context, cluster string) (*pgxpool.Config, pgaddr.Addr, *acquireCounter, error) {
	if cluster == "" {
		tenant, err := m.tenantAddr(ctx)
		return m.base, tenant, &m.acquiring, err
	}
	m.tenantMu.Lock()
	defer m.tenantMu.Unlock()
	if c := m.clusters[cluster]; c != nil {
		return c.base, c.tenant, &c.acquiring, nil
	}
	connString, override, err := m.cfg.Clusters.ClusterConnString(ctx, cluster)
	if err != nil {
		return nil, pgaddr.Addr{}, nil, fmt.Errorf("pgpool: %w", err)
	}
	base, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, pgaddr.Addr{}, nil, fmt.Errorf("pgpool: cluster %q: invalid connection string", cluster)
	}
	tenant, err := pgaddr.Tenant(ctx, connString, override)
	if err != nil {
		return nil, pgaddr.Addr{}, nil, &pgaddr.ClusterUnavailableError{Cluster: cluster, Err: err}
	}
	if tenant.NoSocket {
		// Either the cluster is down (Tenant could not ask it for its
		// socket: nothing is cached, the next call asks again) or its
		// socket is out of reach (cached, with a warning).
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := pgconn.ConnectConfig(cctx, base.ConnConfig.Config.Copy())
		cancel()
		if err != nil {
			return nil, pgaddr.Addr{}, nil, &pgaddr.ClusterUnavailableError{Cluster: cluster, Err: err}
		}
		c.Close(context.WithoutCancel(ctx))
		m.cfg.Logger.Warn("pgpool: tenant roles of cluster "+cluster+" reach it over TCP at "+tenant.String()+
			", which a locked-down cluster refuses: give the cluster a --pg-backend (bitd admin cluster add … --pg-backend ADDR)", "why", tenant.Why)
	}
	m.cfg.Logger.Info("pgpool: tenant roles of cluster "+cluster+" connect to "+tenant.String(), "why", tenant.Why)
	if m.clusters == nil {
		m.clusters = map[string]*clusterConn{}
	}
	c := &clusterConn{base: base, tenant: tenant}
	m.clusters[cluster] = c
	return base, tenant, &c.acquiring, nil
}

// TenantAddrOf returns where tenant roles connect on cluster ("" or
// "default": the default cluster), in pgaddr.Addr.String form.
func (m *Manager) TenantAddrOf(ctx context.Context, cluster string) (string, error) {
	if m.err != nil {
		return "", m.err
	}
	if cluster == DefaultCluster || m.cfg.Clusters == nil {
		cluster = ""
	}
	_, a, _, err := m.clusterBase(ctx, cluster)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

func (m *Manager) poolConfig(db, role string, tenant pgaddr.Addr, base *pgxpool.Config, cluster string, counter *acquireCounter) *pgxpool.Config {
	pc := base.Copy()
	pc.ShouldPing = shouldPing
	cc := pc.ConnConfig
	cc.Host, cc.Port, cc.Fallbacks = tenant.Host, tenant.Port, nil
	if tenant.Unix() {
		cc.TLSConfig = nil // PostgreSQL has no TLS on Unix sockets
	}
	cc.Database = db
	cc.User = role
	cc.Password = secret.RolePassword(m.cfg.Secret, role)
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 10 * time.Second
	}
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = "bitd"
	// Output formats the query encoder expects by default (user SQL may
	// change them for its own session; DISCARD ALL restores these).
	cc.RuntimeParams["DateStyle"] = "ISO, MDY"
	cc.RuntimeParams["IntervalStyle"] = "postgres"
	cc.RuntimeParams["TimeZone"] = "UTC"
	cc.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	cc.Tracer = counter // for pgxpool.AcquireTracer; its query tracing does nothing
	cc.StatementCacheCapacity = 0
	cc.DescriptionCacheCapacity = 0
	k := key{db, role}
	guard := func(_ context.Context, _ *pgconn.Config, nc net.Conn) (net.Conn, error) {
		return &copyGuard{Conn: nc, onStartupError: func() { m.markSuspect(k) }, signals: m.cfg.TestSignals}, nil
	}
	if prev := cc.AfterNetConnect; prev != nil {
		cc.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, nc net.Conn) (net.Conn, error) {
			nc, err := prev(ctx, c, nc)
			if err != nil {
				return nil, err
			}
			return guard(ctx, c, nc)
		}
	} else {
		cc.AfterNetConnect = guard
	}
	pc.BeforeConnect = func(ctx context.Context, c *pgx.ConnConfig) error {
		if cluster != "" {
			c.DialFunc = clusterDial(cluster, c.DialFunc)
		}
		if m.cfg.Budget != nil {
			c.DialFunc = budgetDial(m.cfg.Budget, db, strings.HasSuffix(role, readerSuffix) || strings.HasSuffix(role, publicSuffix), c.DialFunc)
		}
		if m.takeSuspect(k) {
			if err := m.repairRoleOn(ctx, base, db, role); err != nil {
				m.cfg.Logger.Warn("pgpool: resetting a login role failed", "database", db, "role", role, "err", err)
			}
		}
		return nil
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		var tampered bool
		err := c.QueryRow(ctx, roleSettingsSQL).Scan(&tampered)
		if err == nil && !tampered {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		m.cfg.Logger.Warn("pgpool: a login role has per-role settings (set by its own SQL); resetting it", "database", db, "role", role)
		if rerr := m.repairRoleOn(ctx, base, db, role); rerr != nil {
			m.cfg.Logger.Warn("pgpool: resetting a login role failed", "database", db, "role", role, "err", rerr)
		}
		return fmt.Errorf("pgpool: role %q had been altered by SQL run as it (ALTER ROLE … SET); it was reset: retry", role)
	}
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, CancelRequestDelay: 0, DeadlineDelay: 5 * time.Second}
	}
	pc.MinConns = 0
	pc.MaxConns = m.cfg.MaxConnsPerPool
	pc.MaxConnIdleTime = m.cfg.IdleTimeout
	pc.HealthCheckPeriod = min(m.cfg.IdleTimeout/2, 30*time.Second)
	pc.MaxConnLifetime = time.Hour
	pc.AfterRelease = ResetSession
	return pc
}

// roleSettingsSQL reports whether the session's login role has per-role
// settings (ALTER ROLE … SET), in any database. bitd never sets any.
const roleSettingsSQL = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s
	JOIN pg_catalog.pg_roles r ON r.oid = s.setrole WHERE r.rolname = current_user)`

func (m *Manager) markSuspect(k key) {
	m.mu.Lock()
	m.suspect[k] = true
	m.mu.Unlock()
}

func (m *Manager) takeSuspect(k key) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.suspect[k]
	delete(m.suspect, k)
	return s
}

// RepairRole resets what login role pgRole may change about itself: its
// settings (in every database) and its password, set again to the one
// derived from the server secret. It connects as the ConnString's user
// (which needs CREATEROLE). Pools call it themselves; the wire proxy calls
// it when the server refuses a relayed session's login.
func (m *Manager) RepairRole(ctx context.Context, pgDatabase, pgRole string) error {
	if m.err != nil {
		return m.err
	}
	base := m.base
	if m.cfg.Clusters != nil {
		c, err := m.cfg.Clusters.PlacementOf(ctx, pgDatabase)
		if err != nil {
			return err
		}
		if c != DefaultCluster {
			if base, _, _, err = m.clusterBase(ctx, c); err != nil {
				return err
			}
		}
	}
	return m.repairRoleOn(ctx, base, pgDatabase, pgRole)
}

func (m *Manager) repairRoleOn(ctx context.Context, base *pgxpool.Config, db, role string) error {
	conn, err := pgx.ConnectConfig(ctx, base.ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	r := pgx.Identifier{role}.Sanitize()
	rows, err := conn.Query(ctx, `SELECT d.datname FROM pg_catalog.pg_db_role_setting s
		JOIN pg_catalog.pg_roles r ON r.oid = s.setrole JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
		WHERE r.rolname = $1`, role)
	if err != nil {
		return fmt.Errorf("read role settings: %w", err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read role settings: %w", err)
	}
	stmts := []string{"ALTER ROLE " + r + " RESET ALL"}
	for _, d := range dbs {
		stmts = append(stmts, "ALTER ROLE "+r+" IN DATABASE "+pgx.Identifier{d}.Sanitize()+" RESET ALL")
	}
	// The verifier holds only base64 characters, '$' and ':'.
	stmts = append(stmts, "ALTER ROLE "+r+" PASSWORD '"+secret.SCRAMVerifier(secret.RolePassword(m.cfg.Secret, role))+"'")
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("reset role: %w", err)
		}
	}
	m.cfg.Logger.Info("pgpool: login role reset", "database", db, "role", role)
	return nil
}

// CloseDatabase closes every pool of pgDatabase (call it before DROP
// DATABASE … WITH (FORCE)): later Pool calls create new pools, idle
// connections close at once, and connections in use close when released. It
// does not wait for them, so a long query cannot hold up the DROP, which
// terminates it.
func (m *Manager) CloseDatabase(pgDatabase string) {
	var toClose []*pgxpool.Pool
	m.mu.Lock()
	for k, e := range m.pools {
		if k.db == pgDatabase {
			toClose = append(toClose, e.pool)
			delete(m.pools, k)
		}
	}
	m.mu.Unlock()
	for _, p := range toClose {
		go p.Close()
	}
}

// Budget returns Config.Budget (nil when there is none).
func (m *Manager) Budget() *connbudget.Budget { return m.cfg.Budget }

// ReleaseIdle closes the idle connections of the pools of the databases
// for which match returns true (nil: every pool) and returns how many it
// closed. Connections in use are left alone.
func (m *Manager) ReleaseIdle(match func(pgDatabase string) bool) int {
	var pools []*pgxpool.Pool
	m.mu.Lock()
	for k, e := range m.pools {
		if match == nil || match(k.db) {
			pools = append(pools, e.pool)
		}
	}
	m.mu.Unlock()
	n := 0
	for _, p := range pools {
		for _, c := range p.AcquireAllIdle(context.Background()) {
			// A closed connection is destroyed on release (ResetSession
			// refuses it), which closes its socket and frees its slot.
			ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
			_ = c.Conn().Close(ctx)
			cancel()
			c.Release()
			n++
		}
	}
	if n > 0 {
		m.cfg.Logger.Debug("pgpool: closed idle connections to free connection slots", "closed", n)
	}
	return n
}

// budgetDial wraps dial (nil: net.Dialer) so that every connection takes a
// slot of b for pgDatabase before it is dialled and gives it back when its
// socket closes. pgconn dials again for fallback configurations (TLS, then
// plain); after a refusal they are refused at once instead of waiting again.
// readerSuffix and publicSuffix end the names of a platform database's
// reader and public-reader roles (store.ReaderSuffix, store.PublicSuffix):
// their connections count against the readers' share.
const (
	readerSuffix = "_reader"
	publicSuffix = "_public"
)

func budgetDial(b *connbudget.Budget, pgDatabase string, reader bool, dial pgconn.DialFunc) pgconn.DialFunc {
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	var refused error
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if refused != nil {
			return nil, refused
		}
		acquire := b.Acquire
		if reader {
			acquire = b.AcquireReader
		}
		release, err := acquire(ctx, pgDatabase)
		if err != nil {
			if connbudget.IsOver(err) {
				refused = err
			}
			return nil, err
		}
		nc, err := dial(ctx, network, addr)
		if err != nil {
			release()
			return nil, err
		}
		return &budgetConn{Conn: nc, release: release}, nil
	}
}

// budgetConn gives its budget slot back when it is closed.
type budgetConn struct {
	net.Conn
	release func() // idempotent
}

func (c *budgetConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// Stats are the pools' connections, summed over the open pools.
type Stats struct {
	Pools int
	// InUse, Idle and Max are connections handed out, idle, and the
	// pools' bound; Waiting is callers inside Acquire now.
	InUse, Idle, Max, Waiting int64
	// WaitsTotal and WaitTime are the acquisitions that had to wait for a
	// connection and their total wait (over the pools open now).
	WaitsTotal int64
	WaitTime   time.Duration
}

// Stats reads the pools' statistics (for metrics, at scrape time), over
// every cluster.
func (m *Manager) Stats() Stats {
	var s Stats
	for _, c := range m.StatsByCluster() {
		s.Pools += c.Pools
		s.InUse += c.InUse
		s.Idle += c.Idle
		s.Max += c.Max
		s.Waiting += c.Waiting
		s.WaitsTotal += c.WaitsTotal
		s.WaitTime += c.WaitTime
	}
	return s
}

// StatsByCluster is Stats per cluster ("default", and every other cluster
// a pool was made for: Config.Clusters).
func (m *Manager) StatsByCluster() map[string]Stats {
	type placed struct {
		cluster string
		pool    *pgxpool.Pool
	}
	m.mu.Lock()
	pools := make([]placed, 0, len(m.pools))
	for _, e := range m.pools {
		pools = append(pools, placed{e.cluster, e.pool})
	}
	m.mu.Unlock()
	out := map[string]Stats{DefaultCluster: {Waiting: m.acquiring.n.Load()}}
	m.tenantMu.Lock()
	for name, c := range m.clusters {
		out[name] = Stats{Waiting: c.acquiring.n.Load()}
	}
	m.tenantMu.Unlock()
	for _, p := range pools {
		name := p.cluster
		if name == "" {
			name = DefaultCluster
		}
		s := out[name]
		st := p.pool.Stat()
		s.Pools++
		s.InUse += int64(st.AcquiredConns())
		s.Idle += int64(st.IdleConns())
		s.Max += int64(st.MaxConns())
		s.WaitsTotal += st.EmptyAcquireCount()
		s.WaitTime += st.EmptyAcquireWaitTime()
		out[name] = s
	}
	return out
}

// acquireCounter is a pgxpool.AcquireTracer that counts the callers inside
// Acquire.
type acquireCounter struct{ n atomic.Int64 }

func (a *acquireCounter) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	a.n.Add(1)
	return ctx
}

func (a *acquireCounter) TraceAcquireEnd(context.Context, *pgxpool.Pool, pgxpool.TraceAcquireEndData) {
	a.n.Add(-1)
}

// TraceQueryStart and TraceQueryEnd make acquireCounter the pgx.QueryTracer
// pgxpool takes its AcquireTracer from; they do nothing.
func (a *acquireCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (a *acquireCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Len returns the number of open pools.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pools)
}

// Close closes every pool and waits for connections in use to be released;
// later Pool calls fail.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	pools := m.pools
	m.pools = map[key]*entry{}
	m.mu.Unlock()
	for _, e := range pools {
		e.pool.Close()
	}
}

// shouldPing makes the pool ping a connection before handing it out when it
// has been idle for over a second or its socket is already closed (a
// PostgreSQL restart): a dead one is replaced instead of failing a query.
func shouldPing(_ context.Context, p pgxpool.ShouldPingParams) bool {
	return p.IdleDuration > time.Second || pgalive.Broken(p.Conn.PgConn().Conn())
}

// clusterDial makes a dial failure on a non-default cluster a
// *pgaddr.ClusterUnavailableError naming it.
func clusterDial(cluster string, dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, &pgaddr.ClusterUnavailableError{Cluster: cluster, Err: err}
		}
		return c, nil
	}
}
