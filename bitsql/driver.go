// Package bitsql is a database/sql driver for bitkit's HTTP API: it runs
// SQL over HTTPS (core), so it works where a PostgreSQL socket does not:
// js/wasm (browsers, Node, Workers) and behind proxies that pass only HTTP.
//
//	import _ "github.com/bitkit-dev/bitkit/bitsql"
//
//	db, err := sql.Open("bitkit", "https://bitd.example.com?database=alice/shop")
//
// The DSN is the server's URL with query parameters:
//
//	database  the database, "account/dbname" (required)
//	api_key   the API key; when absent, the BITKIT_API_KEY environment
//	          variable (prefer it: a DSN is easily logged)
//	timeout   the default statement timeout (a Go duration such as "30s")
//
// Statements use PostgreSQL's $1, $2, … placeholders; named arguments are
// refused. Arguments may be nil, integers, floats, bool, string, []byte
// (bytea), time.Time, and anything implementing driver.Valuer. Results
// come back exactly: int2/int4/int8 as int64 (all 64 bits), numeric as its
// decimal string (scan it into a string, or a float64 if rounding is
// fine), float4/float8 as float64, bool, timestamp/timestamptz/date as
// time.Time, bytea as []byte, json/jsonb and arrays as their JSON text
// ([]byte), every other type as string, NULL as nil.
//
// A connection of this driver holds no socket: outside a transaction every
// statement is one HTTP request. BeginTx begins an interactive transaction
// on the server (POST /v2beta/tx): its statements run on one server-side
// database connection until Commit or Rollback, with the isolation level
// and read-only flag of sql.TxOptions. The server rolls back a transaction
// left idle longer than its idle timeout (15 s by default).
//
// The driver implements driver.DriverContext, driver.Connector,
// driver.QueryerContext, driver.ExecerContext, driver.ConnBeginTx,
// driver.Pinger, driver.SessionResetter, driver.Validator and
// driver.NamedValueChecker. It imports only the standard library and
// bitkit's core, so it builds for js/wasm; there it uses core.DefaultFetcher
// when the program set one, else the host's fetch (package jsfetch).
package bitsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

// DriverName is the name the driver registers with database/sql.
const DriverName = "bitkit"

func init() { sql.Register(DriverName, &Driver{}) }

// Driver is the database/sql driver.
type Driver struct{}

// Open opens a connection for dsn (database/sql calls it only without
// OpenConnector; both parse the DSN the same way).
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector parses dsn once for all of a sql.DB's connections.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnector(cfg)
}

// Config is a parsed DSN.
type Config struct {
	// Endpoint is the server URL without the query.
	Endpoint string
	// Database is "account/dbname".
	Database string
	// APIKey is the credential (never printed by String).
	APIKey string
	// Timeout is the default statement timeout; 0 means the server's.
	Timeout time.Duration
	// Options are extra core client options (NewConnector only).
	Options []core.Option
}

// String describes c without its key.
func (c Config) String() string {
	return fmt.Sprintf("bitkit %s database %s", c.Endpoint, c.Database)
}

// ParseDSN parses "https://host[:port][/path]?database=account/db[&api_key=…][&timeout=30s]".
func ParseDSN(dsn string) (Config, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Config{}, errors.New(`bitsql: the DSN must be the server URL with the database, e.g. "https://bitd.example.com?database=alice/shop"`)
	}
	q := u.Query()
	cfg := Config{Database: q.Get("database"), APIKey: q.Get("api_key")}
	if cfg.Database == "" {
		return Config{}, errors.New(`bitsql: the DSN names no database: add ?database=account/dbname`)
	}
	if t := q.Get("timeout"); t != "" {
		if cfg.Timeout, err = time.ParseDuration(t); err != nil || cfg.Timeout < 0 {
			return Config{}, fmt.Errorf("bitsql: the DSN's timeout %q is not a Go duration such as 30s", t)
		}
	}
	for k := range q {
		switch k {
		case "database", "api_key", "timeout":
		default:
			return Config{}, fmt.Errorf("bitsql: the DSN has an unknown parameter %q (known: database, api_key, timeout)", k)
		}
	}
	if cfg.APIKey == "" {
		cfg.APIKey = os.Getenv("BITKIT_API_KEY")
	}
	if cfg.APIKey == "" {
		return Config{}, errors.New("bitsql: no API key: set BITKIT_API_KEY in the environment or add api_key to the DSN (create one with `bit key create`)")
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	cfg.Endpoint = u.String()
	return cfg, nil
}

// Connector opens connections for one server and database; use it with
// sql.OpenDB to pass a Config (and core options) without a DSN.
type Connector struct {
	cfg    Config
	client *core.Client
}

// NewConnector returns a Connector for cfg.
func NewConnector(cfg Config) (*Connector, error) {
	opts := append([]core.Option{core.WithAPIKey(cfg.APIKey)}, platformOptions()...)
	opts = append(opts, cfg.Options...)
	c, err := core.NewClient(cfg.Endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("bitsql: %w", err)
	}
	return &Connector{cfg: cfg, client: c}, nil
}

// Connect returns a connection; it does not contact the server.
func (c *Connector) Connect(context.Context) (driver.Conn, error) {
	return &conn{c: c.client, db: c.cfg.Database, timeout: c.cfg.Timeout}, nil
}

// Driver returns the Driver.
func (c *Connector) Driver() driver.Driver { return &Driver{} }

// Client is the core client the connector's connections use.
func (c *Connector) Client() *core.Client { return c.client }

// conn is one database/sql connection: the client, and the interactive
// transaction it has open, if any. database/sql uses a conn from one
// goroutine at a time.
type conn struct {
	c       *core.Client
	db      string
	timeout time.Duration
	tx      *core.Tx
	closed  bool
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a statement that sends query with its arguments
// at each execution (the server caches parameter types; nothing is
// prepared ahead).
func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	if strings.TrimSpace(query) == "" {
		return nil, errors.New("bitsql: empty statement")
	}
	return &stmt{c: c, query: query}, nil
}

// Close rolls back a transaction left open.
func (c *conn) Close() error {
	c.closed = true
	if c.tx != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.tx.Rollback(ctx)
		c.tx = nil
		return err
	}
	return nil
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins an interactive transaction on the server.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.tx != nil {
		return nil, errors.New("bitsql: a transaction is already open on this connection")
	}
	var o core.TxOptions
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		o.IsolationLevel = "read uncommitted"
	case sql.LevelReadCommitted:
		o.IsolationLevel = "read committed"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		o.IsolationLevel = "repeatable read"
	case sql.LevelSerializable:
		o.IsolationLevel = "serializable"
	default:
		return nil, fmt.Errorf("bitsql: isolation level %v is not supported by PostgreSQL: use read committed, repeatable read or serializable", sql.IsolationLevel(opts.Isolation))
	}
	o.ReadOnly = opts.ReadOnly
	tx, err := c.c.Begin(ctx, c.db, o)
	if err != nil {
		return nil, err
	}
	c.tx = tx
	return &txn{c: c, tx: tx}, nil
}

// txn is the driver.Tx of an interactive transaction.
type txn struct {
	c  *conn
	tx *core.Tx
}

func (t *txn) Commit() error {
	t.c.tx = nil
	return t.tx.Commit(context.Background())
}

func (t *txn) Rollback() error {
	t.c.tx = nil
	return t.tx.Rollback(context.Background())
}

// request builds a statement request with the arguments converted.
func (c *conn) request(query string, args []driver.NamedValue) (core.QueryRequest, error) {
	q := core.QueryRequest{Database: c.db, SQL: query, Timeout: c.timeout}
	if len(args) > 0 {
		q.Params = make([]any, len(args))
		for _, a := range args {
			if a.Name != "" {
				return q, fmt.Errorf("bitsql: named argument %q: use $1, $2, … placeholders and positional arguments", a.Name)
			}
			q.Params[a.Ordinal-1] = param(a.Value)
		}
	}
	return q, nil
}

// param converts a driver.Value into what the server takes as JSON.
func param(v driver.Value) any {
	switch x := v.(type) {
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []byte:
		if x == nil {
			return nil
		}
		return x // JSON-encoded as standard base64, which bytea takes
	}
	return v
}

func (c *conn) run(ctx context.Context, query string, args []driver.NamedValue) (*core.Result, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	q, err := c.request(query, args)
	if err != nil {
		return nil, err
	}
	if c.tx != nil {
		return c.tx.QueryWith(ctx, q)
	}
	return c.c.QueryWith(ctx, q)
}

// QueryContext runs query and returns its rows (read whole).
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	r, err := c.run(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return newRows(r), nil
}

// ExecContext runs query and returns the rows it affected.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	r, err := c.run(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return result(r.RowCount), nil
}

// Ping runs SELECT 1 (in the open transaction, if any).
func (c *conn) Ping(ctx context.Context) error {
	_, err := c.run(ctx, "SELECT 1", nil)
	return err
}

// ResetSession runs before database/sql reuses the connection: a
// connection never keeps server state between uses, except a transaction
// left open, which it rolls back.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.closed {
		return driver.ErrBadConn
	}
	if c.tx != nil {
		err := c.tx.Rollback(ctx)
		c.tx = nil
		if err != nil {
			return driver.ErrBadConn
		}
	}
	return nil
}

// IsValid reports whether the connection may be reused.
func (c *conn) IsValid() bool { return !c.closed }

// CheckNamedValue accepts the types the driver sends (see the package
// comment); others go through driver.DefaultParameterConverter.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nv.Name != "" {
		return fmt.Errorf("bitsql: named argument %q: use $1, $2, … placeholders and positional arguments", nv.Name)
	}
	switch nv.Value.(type) {
	case nil, int64, float64, bool, string, []byte, time.Time:
		return nil
	}
	v, err := driver.DefaultParameterConverter.ConvertValue(nv.Value)
	if err != nil {
		return fmt.Errorf("bitsql: argument $%d: %w", nv.Ordinal, err)
	}
	nv.Value = v
	return nil
}

// stmt is a statement: its text, sent at each execution.
type stmt struct {
	c     *conn
	query string
}

var (
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error { return s.c.CheckNamedValue(nv) }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.query, named(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.query, named(args))
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

func named(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return out
}

// result is a driver.Result: rows affected, no insert id.
type result int64

func (r result) LastInsertId() (int64, error) {
	return 0, errors.New("bitsql: PostgreSQL has no last insert id: use INSERT … RETURNING id with QueryRow")
}

func (r result) RowsAffected() (int64, error) { return int64(r), nil }
