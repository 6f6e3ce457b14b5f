package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// Interactive transactions over HTTP (POST /v2beta/tx; docs/query.md).

// ErrTxDone is returned by a Tx used after Commit or Rollback, or after the
// server ended it (then wrapped around the server's answer).
var ErrTxDone = errors.New("core: the transaction has already been committed or rolled back")

// TxOptions configures Begin and InTx.
type TxOptions struct {
	// IsolationLevel is "read committed" (the default), "repeatable read"
	// or "serializable".
	IsolationLevel string
	// ReadOnly begins the transaction READ ONLY: writes fail.
	ReadOnly bool
	// Deferrable begins it DEFERRABLE (meaningful with serializable and
	// ReadOnly: it waits for a snapshot that cannot fail).
	Deferrable bool
	// IdleTimeout is how long the server keeps the transaction open with no
	// request in progress before rolling it back; 0 means the server's
	// default (15 s). The server caps it.
	IdleTimeout time.Duration
	// MaxRetries (InTx only) is how many times InTx runs its function
	// again, in a new transaction, after a serialization failure (SQLSTATE
	// 40001) or a deadlock (40P01); 0 means never.
	MaxRetries int
}

// Tx is an interactive transaction: its statements run, one request each,
// on one database connection that the server holds for it until Commit or
// Rollback. The server rolls it back when it stays idle longer than its
// idle timeout (TxOptions.IdleTimeout) or reaches the server's maximum
// lifetime (ExpiresAt). A statement that fails leaves the transaction
// failed, as in PostgreSQL: later statements fail until Rollback, and
// Commit rolls it back and returns an error.
//
// A Tx is not safe for concurrent use: it runs one request at a time (the
// server answers a second concurrent one with 409 transaction_busy).
type Tx struct {
	c         *Client
	db        string
	id        string
	expiresAt time.Time
	done      bool
}

type beginBody struct {
	Database       string `json:"database_name"`
	IsolationLevel string `json:"isolation_level,omitempty"`
	ReadOnly       bool   `json:"read_only,omitempty"`
	Deferrable     bool   `json:"deferrable,omitempty"`
	IdleTimeoutMS  int64  `json:"idle_timeout_ms,omitempty"`
}

// Begin starts an interactive transaction in database ("account/dbname").
// A begin refused with 429 (too many open transactions) or 503 is retried
// per the client's RetryPolicy.
func (c *Client) Begin(ctx context.Context, database string, opts TxOptions) (*Tx, error) {
	if database == "" {
		return nil, errors.New("core: begin: no database given; name it as account/dbname")
	}
	var ans struct {
		TxID      string    `json:"tx_id"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	body := beginBody{Database: database, IsolationLevel: opts.IsolationLevel, ReadOnly: opts.ReadOnly,
		Deferrable: opts.Deferrable}
	if opts.IdleTimeout > 0 {
		body.IdleTimeoutMS = max(1, opts.IdleTimeout.Milliseconds())
	}
	// The Idempotency-Key makes a refused begin (429, 503) retryable; a
	// begin whose answer was lost leaves a transaction that the server
	// rolls back at its idle timeout.
	if _, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/tx", idem: true, body: body}, &ans); err != nil {
		return nil, err
	}
	if ans.TxID == "" {
		return nil, errors.New("core: begin: the server answered no tx_id; it may not support interactive transactions")
	}
	return &Tx{c: c, db: database, id: ans.TxID, expiresAt: ans.ExpiresAt}, nil
}

// ID is the transaction's tx_id.
func (tx *Tx) ID() string { return tx.id }

// Database is the database the transaction runs in.
func (tx *Tx) Database() string { return tx.db }

// ExpiresAt is when the server rolls the transaction back however busy it is.
func (tx *Tx) ExpiresAt() time.Time { return tx.expiresAt }

// check refuses a finished transaction.
func (tx *Tx) check() error {
	if tx.done {
		return ErrTxDone
	}
	return nil
}

// ended marks tx finished when err says the server no longer has it (or
// rolled it back while the statement ran).
func (tx *Tx) ended(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && (ae.Code == "transaction_not_found" || ae.Code == "transaction_ended") {
		tx.done = true
		return fmt.Errorf("%w: %w", ErrTxDone, err)
	}
	return err
}

// Query runs one SQL statement in the transaction with args as its $1,
// $2, ... parameters and returns the whole result.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (*Result, error) {
	return tx.QueryWith(ctx, QueryRequest{SQL: sql, Params: args})
}

// QueryWith runs q in the transaction (q.Database may be empty).
func (tx *Tx) QueryWith(ctx context.Context, q QueryRequest) (*Result, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	q.Database, q.txID = tx.db, tx.id
	r, err := tx.c.QueryWith(ctx, q)
	return r, tx.ended(err)
}

// Exec runs one SQL statement in the transaction and returns the number of
// rows it affected (or returned).
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	r, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return r.RowCount, nil
}

// QueryStream runs q in the transaction and streams its rows. Close the
// stream before the transaction's next request.
func (tx *Tx) QueryStream(ctx context.Context, q QueryRequest) (*Stream, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	q.Database, q.txID = tx.db, tx.id
	s, err := tx.c.QueryStream(ctx, q)
	return s, tx.ended(err)
}

// QueryStreamBody runs q in the transaction and returns the raw NDJSON
// body, as Client.QueryStreamBody does (the wasm client decodes it in
// JavaScript). Close it before the transaction's next request.
func (tx *Tx) QueryStreamBody(ctx context.Context, q QueryRequest) (io.ReadCloser, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	q.Database, q.txID = tx.db, tx.id
	b, err := tx.c.QueryStreamBody(ctx, q)
	return b, tx.ended(err)
}

// Batch runs statements in the transaction in one request and returns
// their results. A failing statement (its index is in the *APIError)
// leaves the transaction failed.
func (tx *Tx) Batch(ctx context.Context, statements []Statement) ([]*Result, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	rs, err := tx.c.Batch(ctx, BatchRequest{Database: tx.db, Queries: statements, txID: tx.id})
	return rs, tx.ended(err)
}

// Commit commits the transaction. A transaction that had failed is rolled
// back instead and Commit returns an *APIError with code
// "transaction_aborted" (status 409); a serialization failure at commit
// comes back with its SQLSTATE (40001). Either way the transaction is over.
func (tx *Tx) Commit(ctx context.Context) error {
	return tx.end(ctx, "commit")
}

// Rollback rolls the transaction back. Rolling back a transaction that the
// server already ended (idle timeout) is not an error; after Commit or
// Rollback it returns ErrTxDone.
func (tx *Tx) Rollback(ctx context.Context) error {
	err := tx.end(ctx, "rollback")
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == "transaction_not_found" {
		return nil
	}
	return err
}

func (tx *Tx) end(ctx context.Context, what string) error {
	if err := tx.check(); err != nil {
		return err
	}
	_, err := tx.c.do(ctx, &request{method: "POST", path: apiPrefix + "/tx/" + url.PathEscape(tx.id) + "/" + what}, nil)
	var ae *APIError
	if err == nil || errors.As(err, &ae) && ae.StatusCode < 500 {
		tx.done = true // the server answered: the transaction is over
	}
	return err
}

// IsSerializationFailure reports whether err is PostgreSQL's serialization
// failure (SQLSTATE 40001) or deadlock (40P01): running the transaction
// again may succeed.
func IsSerializationFailure(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.SQLState == "40001" || ae.SQLState == "40P01")
}

// InTx runs fn in a transaction of database: it commits when fn returns
// nil, rolls back when fn returns an error or panics (the panic goes on),
// and, with opts.MaxRetries, runs fn again in a new transaction after a
// serialization failure or deadlock (IsSerializationFailure) in fn or at
// commit. fn must not keep tx, and must be safe to run more than once.
func (c *Client) InTx(ctx context.Context, database string, opts TxOptions, fn func(*Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := c.inTxOnce(ctx, database, opts, fn)
		if err == nil || attempt >= opts.MaxRetries || !IsSerializationFailure(err) || ctx.Err() != nil {
			return err
		}
		// A short, growing, jittered pause lets the conflicting transaction finish.
		if serr := c.clock.Sleep(ctx, c.retry.Backoff(attempt+1)/4); serr != nil {
			return err
		}
	}
}

func (c *Client) inTxOnce(ctx context.Context, database string, opts TxOptions, fn func(*Tx) error) (err error) {
	tx, err := c.Begin(ctx, database, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			tx.rollbackQuietly()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.rollbackQuietly()
		return err
	}
	if tx.done {
		return fmt.Errorf("core: InTx: the function ended the transaction itself; let InTx commit or roll back")
	}
	return tx.Commit(ctx)
}

// rollbackQuietly rolls back with a context of its own (the caller's may
// have ended), ignoring errors: the server rolls back at the idle timeout
// anyway.
func (tx *Tx) rollbackQuietly() {
	if tx.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// String names the transaction without its database's rows: "tx <id> on <db>".
func (tx *Tx) String() string {
	return "tx " + strings.TrimSpace(tx.id) + " on " + tx.db
}

// ResumeTx returns a Tx for a transaction begun elsewhere (another process,
// an earlier request of a Worker) from its database and tx_id. Only the
// credential that began it may use it; the server answers others 404.
func (c *Client) ResumeTx(database, txID string) *Tx {
	return &Tx{c: c, db: database, id: txID}
}
