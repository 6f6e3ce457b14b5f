// Package pgdirect gives Go programs pooled, direct PostgreSQL access to
// bitkit databases through bitd's wire proxy, with an API key (or access
// token) as the password: the equivalents of python-bitdotio's
// pooled_connection (WithConn), pooled_cursor (WithTx) and get_connection
// (Connect), on github.com/jackc/pgx/v5 and pgxpool.
//
//	c, err := pgdirect.New(ctx, os.Getenv("BITKIT_API_KEY"))
//	if err != nil { ... }
//	defer c.Close()
//	err = c.WithTx(ctx, "alice/mydb", func(tx pgx.Tx) error {
//		_, err := tx.Exec(ctx, "INSERT INTO notes (body) VALUES ($1)", "hello")
//		return err
//	})
//
// # Pools
//
// A Client keeps one *pgxpool.Pool per database ("account/db"), created on
// first use. Defaults: MinConns 0, MaxConns 100, MaxConnIdleTime 4 minutes
// (below bitd's 5-minute idle close, so the pool retires idle connections
// before the server does), pgxpool's 1-minute health check period. A
// connection that has been idle for more than a second, or that has unread
// data or a closed socket (an idle close or a PostgreSQL restart announced
// with a FATAL message), is pinged before it is handed out and replaced when
// it is dead, so server-side idle closes and PostgreSQL restarts do not
// surface as errors.
//
// # Retries
//
// Work that fails because the server had closed the connection before
// anything was sent is retried once on a fresh connection: an error for
// which pgconn.SafeToRetry is true, or bitd's idle-close FATAL (SQLSTATE
// 57P05, which bitd sends only when it forwarded nothing of the new request).
// WithTx also retries when BEGIN fails because the server ended the
// connection (any FATAL, such as a session that bitd terminated when its key
// was revoked, or a closed connection): BEGIN has no effect of its own, so
// repeating it on a fresh connection is always safe, and the fresh
// connection reports the real state (a revoked key then fails with 28P01).
// WithConn retries when fn's only
// operation (counted through pgx.Conn's methods on pools that pgdirect
// created) failed that way. Nothing else is retried: an error after a
// statement reached the server is returned as is.
//
// # Concurrency and fork
//
// A Client is safe for concurrent use by many goroutines. Do not share one
// across fork (or between processes in any other way): sockets would be
// shared by two processes. Create a new Client in the child.
//
// # Secrets
//
// Errors and panics from this package never contain the API key.
package pgdirect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/bitkit-dev/bitkit/internal/pgalive"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults.
const (
	// DefaultAddr is used when neither WithAddr nor BITKIT_PG_ADDR is set.
	DefaultAddr            = "127.0.0.1:6432"
	DefaultMaxConns        = 100
	DefaultMinConns        = 0
	DefaultMaxConnIdleTime = 4 * time.Minute
	// DefaultUser is the user name sent to bitd, which accepts any.
	DefaultUser = "bitkit"
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("pgdirect: client is closed")

// Config is a parsed pgdirect configuration. Build it with NewConfig;
// fields may be changed before NewWithConfig.
type Config struct {
	// APIKey is the password sent to bitd (an API key or access token).
	APIKey string
	// Addr is bitd's wire-proxy address, host:port.
	Addr string
	// User is the user name sent (bitd ignores it). Default "bitkit".
	User string
	// SSLMode is "verify-full" (the default: TLS, bitd's certificate
	// verified against RootCAs and the address's host name), "require"
	// (TLS without verification, only when asked for by name) or "disable"
	// (no TLS: bitd accepts it from loopback clients under bitd dev).
	SSLMode string
	// RootCAs verifies bitd's certificate under verify-full. Default: the
	// system's roots plus the PEM file named by $BITKIT_CA_CERT, if set
	// (bitd dev --tls writes it into demo.env).
	RootCAs *x509.CertPool
	// TLSConfig, when set, is the base of the TLS handshake's configuration
	// (client certificates, ServerName, ...). Under verify-full its RootCAs
	// default to RootCAs and its ServerName to the address's host, and
	// verification stays on.
	TLSConfig *tls.Config
	// MinConns, MaxConns, MaxConnIdleTime and HealthCheckPeriod configure
	// every pool the Client creates (zero HealthCheckPeriod: pgxpool's 1 min).
	MinConns          int32
	MaxConns          int32
	MaxConnIdleTime   time.Duration
	HealthCheckPeriod time.Duration

	pools map[string]*pgxpool.Pool // caller-owned pools by database
}

// Option changes a Config. Options validate their arguments.
type Option func(*Config) error

// WithAddr sets bitd's wire-proxy address (host:port). Default:
// $BITKIT_PG_ADDR, else 127.0.0.1:6432.
func WithAddr(addr string) Option {
	return func(c *Config) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("pgdirect: WithAddr(%q): want host:port: %w", addr, err)
		}
		c.Addr = addr
		return nil
	}
}

// WithTLSConfig sets the base TLS configuration (see Config.TLSConfig);
// it does not change the sslmode.
func WithTLSConfig(tc *tls.Config) Option {
	return func(c *Config) error {
		if tc == nil {
			return errors.New("pgdirect: WithTLSConfig(nil)")
		}
		c.TLSConfig = tc.Clone()
		return nil
	}
}

// WithRootCAs sets the CAs bitd's certificate is verified against (default:
// the system's roots plus $BITKIT_CA_CERT).
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Config) error {
		if pool == nil {
			return errors.New("pgdirect: WithRootCAs(nil): load a pool with x509.NewCertPool and AppendCertsFromPEM")
		}
		c.RootCAs = pool
		return nil
	}
}

// WithSSLMode sets "verify-full" (default), "require" (encrypted but not
// verified: anyone in between can read the API key) or "disable" (bitd
// accepts plaintext only from loopback clients when it was started for
// development).
func WithSSLMode(mode string) Option {
	return func(c *Config) error {
		switch mode {
		case "verify-full", "require", "disable":
		default:
			return fmt.Errorf("pgdirect: WithSSLMode(%q): use \"verify-full\" (the default), \"require\" (no certificate check) or \"disable\"", mode)
		}
		c.SSLMode = mode
		return nil
	}
}

// EnvCACert names the PEM file of CA certificates pgdirect trusts besides
// the system's roots (as core does).
const EnvCACert = "BITKIT_CA_CERT"

// defaultRootCAs is the system's roots plus $BITKIT_CA_CERT, nil when that
// is unset (pgx then uses the system's roots).
func defaultRootCAs() (*x509.CertPool, error) {
	path := os.Getenv(EnvCACert)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pgdirect: $%s: %w (point it at the PEM file of bitd's CA, or unset it)", EnvCACert, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pgdirect: $%s: %s holds no PEM certificate", EnvCACert, path)
	}
	return pool, nil
}

// WithMinConns sets the connections each pool keeps open (default 0).
func WithMinConns(n int32) Option {
	return func(c *Config) error {
		if n < 0 {
			return fmt.Errorf("pgdirect: WithMinConns(%d): must be ≥ 0", n)
		}
		c.MinConns = n
		return nil
	}
}

// WithMaxConns sets the size of each pool (default 100).
func WithMaxConns(n int32) Option {
	return func(c *Config) error {
		if n < 1 {
			return fmt.Errorf("pgdirect: WithMaxConns(%d): must be ≥ 1", n)
		}
		c.MaxConns = n
		return nil
	}
}

// WithMaxConnIdleTime sets how long a pooled connection may stay idle before
// the pool closes it (default 4 min; keep it below bitd's idle timeout).
func WithMaxConnIdleTime(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("pgdirect: WithMaxConnIdleTime(%s): must be positive", d)
		}
		c.MaxConnIdleTime = d
		return nil
	}
}

// WithHealthCheckPeriod sets how often pools check their idle connections
// (default pgxpool's 1 min).
func WithHealthCheckPeriod(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("pgdirect: WithHealthCheckPeriod(%s): must be positive", d)
		}
		c.HealthCheckPeriod = d
		return nil
	}
}

// WithPool makes the Client use a caller-owned pool for db ("account/db").
// Close does not close it.
func WithPool(db string, p *pgxpool.Pool) Option {
	return func(c *Config) error {
		name, err := checkDB(db)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("pgdirect: WithPool(%q, nil)", db)
		}
		if c.pools == nil {
			c.pools = map[string]*pgxpool.Pool{}
		}
		c.pools[name] = p
		return nil
	}
}

// NewConfig builds a Config from an API key and options: the defaults,
// $BITKIT_PG_ADDR, then each option in order. It validates what it can
// without connecting.
func NewConfig(apiKey string, opts ...Option) (*Config, error) {
	if strings.TrimSpace(apiKey) == "" {
		return nil, errors.New("pgdirect: empty API key: pass an API key or access token (e.g. $BITKIT_API_KEY)")
	}
	c := &Config{
		APIKey:          apiKey,
		Addr:            os.Getenv("BITKIT_PG_ADDR"),
		User:            DefaultUser,
		SSLMode:         "verify-full",
		MinConns:        DefaultMinConns,
		MaxConns:        DefaultMaxConns,
		MaxConnIdleTime: DefaultMaxConnIdleTime,
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.MinConns > c.MaxConns {
		return nil, fmt.Errorf("pgdirect: MinConns %d exceeds MaxConns %d", c.MinConns, c.MaxConns)
	}
	if c.RootCAs == nil && c.SSLMode == "verify-full" {
		var err error
		if c.RootCAs, err = defaultRootCAs(); err != nil {
			return nil, err
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("pgdirect: address %q (BITKIT_PG_ADDR?): want host:port", c.Addr)
	}
	return c, nil
}

// Client holds a pool per database. Create it with New or NewWithConfig.
type Client struct {
	cfg    Config
	mu     sync.Mutex
	pools  map[string]*pgxpool.Pool
	owned  map[string]bool // pools the caller gave us
	closed bool
}

// New is NewConfig followed by NewWithConfig.
func New(ctx context.Context, apiKey string, opts ...Option) (*Client, error) {
	cfg, err := NewConfig(apiKey, opts...)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(ctx, cfg)
}

// NewWithConfig returns a Client. It does not connect: pools are created on
// first use. ctx is accepted for symmetry with pgxpool.
func NewWithConfig(ctx context.Context, cfg *Config) (*Client, error) {
	if cfg == nil || cfg.APIKey == "" {
		return nil, errors.New("pgdirect: config without an API key: build it with NewConfig")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgdirect: %w", err)
	}
	c := &Client{cfg: *cfg, pools: map[string]*pgxpool.Pool{}, owned: map[string]bool{}}
	for db, p := range cfg.pools {
		c.pools[db] = p
		c.owned[db] = true
	}
	return c, nil
}

// checkDB validates "account/db".
func checkDB(db string) (string, error) {
	a, d, ok := strings.Cut(db, "/")
	if !ok || a == "" || d == "" || strings.Contains(d, "/") {
		return "", fmt.Errorf("pgdirect: database %q is not of the form account/db (e.g. \"alice/mydb\")", db)
	}
	return db, nil
}

// connConfig builds the pgx connection configuration for db.
func (c *Client) connConfig(db string) (*pgx.ConnConfig, error) {
	host, port, _ := net.SplitHostPort(c.cfg.Addr)
	cs := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=%s", quoteKV(host), quoteKV(port), quoteKV(c.cfg.User), quoteKV(db), c.cfg.SSLMode)
	cc, err := pgx.ParseConfig(cs)
	if err != nil {
		return nil, fmt.Errorf("pgdirect: connection settings for %s: %w", db, err)
	}
	cc.Password = c.cfg.APIKey
	switch c.cfg.SSLMode {
	case "require":
		if c.cfg.TLSConfig != nil {
			cc.TLSConfig = c.cfg.TLSConfig.Clone()
		}
	case "verify-full":
		tc := &tls.Config{}
		if c.cfg.TLSConfig != nil {
			tc = c.cfg.TLSConfig.Clone()
		}
		tc.InsecureSkipVerify = false
		if tc.RootCAs == nil {
			tc.RootCAs = c.cfg.RootCAs // nil: the system's roots
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		cc.TLSConfig = tc
	}
	cc.Fallbacks = nil // never retry without TLS
	return cc, nil
}

// quoteKV quotes a keyword/value connection-string value.
func quoteKV(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Pool returns the pool of db ("account/db"), creating it on first use. The
// Client owns it: do not close it; Close closes it.
func (c *Client) Pool(ctx context.Context, db string) (*pgxpool.Pool, error) {
	if _, err := checkDB(db); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if p := c.pools[db]; p != nil {
		return p, nil
	}
	cc, err := c.connConfig(db)
	if err != nil {
		return nil, err
	}
	cc.Tracer = opCounter{}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("pgdirect: pool settings: %w", err)
	}
	pc.ConnConfig = cc
	pc.MinConns, pc.MaxConns = c.cfg.MinConns, c.cfg.MaxConns
	pc.MaxConnIdleTime = c.cfg.MaxConnIdleTime
	if c.cfg.HealthCheckPeriod > 0 {
		pc.HealthCheckPeriod = c.cfg.HealthCheckPeriod
	}
	pc.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration > time.Second || pgalive.Broken(p.Conn.PgConn().Conn())
	}
	p, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), pc)
	if err != nil {
		return nil, redact(fmt.Errorf("pgdirect: create pool for %s: %w", db, err), c.cfg.APIKey)
	}
	c.pools[db] = p
	return p, nil
}

// Connect opens a single unpooled connection to db (≈ get_connection). The
// caller closes it.
func (c *Client) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	if _, err := checkDB(db); err != nil {
		return nil, err
	}
	if c.isClosed() {
		return nil, ErrClosed
	}
	cc, err := c.connConfig(db)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, redact(fmt.Errorf("pgdirect: connect to %s: %w", db, err), c.cfg.APIKey)
	}
	return conn, nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the pools the Client created (not those passed with
// WithPool). Like pgxpool.Pool.Close, it waits until connections in use have
// been released. Later calls return ErrClosed.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	var toClose []*pgxpool.Pool
	for db, p := range c.pools {
		if !c.owned[db] {
			toClose = append(toClose, p)
		}
	}
	c.pools = nil
	c.mu.Unlock()
	for _, p := range toClose {
		p.Close()
	}
}

// WithConn runs fn with a pooled connection of db (≈ pooled_connection) and
// returns fn's error. The connection goes back to the pool afterwards (or is
// discarded when fn left a transaction open or the connection broken); fn
// must not keep it. A panic in fn releases the connection and propagates.
func (c *Client) WithConn(ctx context.Context, db string, fn func(*pgxpool.Conn) error) error {
	p, err := c.Pool(ctx, db)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		conn, err := p.Acquire(ctx)
		if err != nil {
			return redact(fmt.Errorf("pgdirect: acquire a connection to %s: %w", db, err), c.cfg.APIKey)
		}
		before, counted := opCount(conn.Conn())
		err = runConn(conn, fn)
		after, _ := opCount(conn.Conn())
		conn.Release()
		if err != nil && attempt == 0 && counted && after-before == 1 && retrySafe(err) && ctx.Err() == nil {
			continue
		}
		return err
	}
}

func runConn(conn *pgxpool.Conn, fn func(*pgxpool.Conn) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			conn.Release()
			panic(p)
		}
	}()
	return fn(conn)
}

// WithTx runs fn in a transaction on a pooled connection of db (≈
// pooled_cursor): it commits when fn returns nil, and rolls back when fn
// returns an error (returned unchanged) or panics (the panic is re-raised
// after the rollback).
func (c *Client) WithTx(ctx context.Context, db string, fn func(pgx.Tx) error) error {
	return c.WithTxOptions(ctx, db, pgx.TxOptions{}, fn)
}

// WithTxOptions is WithTx with transaction options (isolation level,
// read-only, deferrable).
func (c *Client) WithTxOptions(ctx context.Context, db string, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	p, err := c.Pool(ctx, db)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		conn, err := p.Acquire(ctx)
		if err != nil {
			return redact(fmt.Errorf("pgdirect: acquire a connection to %s: %w", db, err), c.cfg.APIKey)
		}
		tx, err := conn.BeginTx(ctx, opts)
		if err != nil {
			dead := conn.Conn().PgConn().IsClosed()
			conn.Release()
			if attempt == 0 && (retrySafe(err) || dead || isFatal(err)) && ctx.Err() == nil {
				continue
			}
			return redact(fmt.Errorf("pgdirect: begin a transaction on %s: %w", db, err), c.cfg.APIKey)
		}
		err = runTx(ctx, conn, tx, fn)
		conn.Release()
		return err
	}
}

func runTx(ctx context.Context, conn *pgxpool.Conn, tx pgx.Tx, fn func(pgx.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			rollback(ctx, tx)
			conn.Release()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgdirect: commit: %w", err)
	}
	return nil
}

// rollback rolls tx back even when ctx has ended (a failed rollback closes
// the connection, which the pool then discards).
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// retrySafe: the server closed the connection before it received anything of
// the failed request.
func retrySafe(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57P05" && pe.Severity == "FATAL"
}

// isFatal: the server ended the connection with a FATAL message.
func isFatal(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Severity == "FATAL" || pe.Severity == "PANIC")
}

// opCounter counts statements issued through pgx.Conn methods, so that
// WithConn knows whether a retry-safe failure was fn's first operation.
type opCounter struct{}

const opKey = "pgdirect.ops"

func bump(conn *pgx.Conn) {
	if m := conn.PgConn().CustomData(); m != nil {
		n, _ := m[opKey].(int)
		m[opKey] = n + 1
	}
}

// opCount returns the operation count of conn and whether it is counted.
func opCount(conn *pgx.Conn) (int, bool) {
	m := conn.PgConn().CustomData()
	if m == nil {
		return 0, false
	}
	_, counted := conn.Config().Tracer.(opCounter)
	n, _ := m[opKey].(int)
	return n, counted
}

func (opCounter) TraceQueryStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	bump(conn)
	return ctx
}
func (opCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (opCounter) TraceBatchStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	bump(conn)
	return ctx
}
func (opCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (opCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (opCounter) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	bump(conn)
	return ctx
}
func (opCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}
func (opCounter) TracePrepareStart(ctx context.Context, conn *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	bump(conn)
	return ctx
}
func (opCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// redactedError replaces the API key in an error's text; errors.Is/As still
// reach the wrapped error.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, key string) error {
	if err == nil || key == "" || !strings.Contains(err.Error(), key) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), key, "[REDACTED]"), err: err}
}
