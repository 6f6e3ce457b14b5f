// Package query is bitd's SQL execution engine: the handlers of
// POST /v2beta/query (buffered JSON or streamed NDJSON answers) and
// POST /v2beta/query/batch (several statements in one transaction).
//
// A query runs on a connection of the caller's dbaccess.Target pool, logged
// in as the role the caller's permission maps to, so PostgreSQL enforces
// access. Without params the string is sent with the simple query protocol
// (several statements may be separated by semicolons; the last statement's
// result is answered); with params it is prepared (extended protocol), each
// JSON parameter is encoded for the parameter type PostgreSQL reports, and
// the statement is executed. Results are read in text format and converted to
// JSON by package pgjson.
//
// Limits are enforced by bitd itself: the statement timeout is a context
// deadline whose expiry sends the backend a CancelRequest (configured by
// pgpool), and buffered answers stop (and cancel the backend) when they pass
// MaxRows or MaxBytes, or when the memory budget of all buffered answers
// in flight (MaxBufferedBytes, MaxBufferedBytesPerAccount: membudget.go)
// has no room for them after a short wait. See docs/query.md for the wire
// format.
package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/reqjson"
	"github.com/jackc/pgx/v5/pgtype"
)

// Defaults of Config's zero values.
const (
	DefaultStatementTimeout    = 30 * time.Second
	DefaultMaxStatementTimeout = 10 * time.Minute
	DefaultMaxRows             = 100_000
	DefaultMaxBytes            = 32 << 20
	DefaultStreamStallTimeout  = 30 * time.Second
	// Defaults of the memory budget of buffered answers.
	DefaultMaxBufferedBytes           = 256 << 20
	DefaultMaxBufferedBytesPerAccount = 64 << 20
	DefaultBufferWait                 = 2 * time.Second
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes = 16 << 20
)

// Config configures a Handler.
type Config struct {
	// ExplainError, when set, may replace the error a statement on t
	// failed with by a clearer API error (storage quotas: a permission
	// error on a database over its limit).
	ExplainError func(ctx context.Context, t *dbaccess.Target, err error) error
	// AfterWrite, when set, is told after each statement run on t as a
	// role that may write (not READER), whatever its outcome (storage
	// quotas: measure the database soon). It must not block.
	AfterWrite func(t *dbaccess.Target)
	// StatementTimeout applies when a request has no timeout_ms; 0 means 30s.
	StatementTimeout time.Duration
	// MaxStatementTimeout caps a request's timeout_ms; 0 means 10m.
	MaxStatementTimeout time.Duration
	// MaxRows caps the rows of a buffered answer (a batch: of all its
	// results together); 0 means 100,000. Streamed answers have no row cap.
	MaxRows int
	// MaxBytes caps the encoded rows of a buffered answer; 0 means 32 MiB.
	MaxBytes int64
	// StreamStallTimeout bounds each write of a streamed answer: a client
	// that reads nothing for this long loses its stream, and its query is
	// cancelled. A write never waits past the statement timeout while the
	// query runs. 0 means 30s.
	StreamStallTimeout time.Duration
	// MaxBufferedBytes bounds the encoded rows of all buffered answers in
	// flight together, MaxBufferedBytesPerAccount those of one caller's
	// account (anonymous callers: per client address); 0 means 256 MiB
	// and 64 MiB. Each is raised to at least the one below it (MaxBytes,
	// then MaxBufferedBytesPerAccount). An answer that finds no room waits
	// up to BufferWait (0 means 2s), then is stopped with 429
	// buffer_limit_reached. Answers under 64 KiB are not counted.
	MaxBufferedBytes           int64
	MaxBufferedBytesPerAccount int64
	BufferWait                 time.Duration
	// Tx serves requests that name a tx_id (interactive transactions,
	// package txn); nil refuses them.
	Tx TxSource
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// TraceSQL records the SQL text (never its parameters) on the
	// "db.query" span of a traced request (bitd --trace-sql).
	TraceSQL bool
}

// UsageRecorder counts the rows a database's queries returned.
type UsageRecorder interface {
	AddRowsQueried(ctx context.Context, databaseID string, rows int64)
}

// Handler serves the query endpoints. It is safe for concurrent use.
type Handler struct {
	cfg      Config
	resolver dbaccess.Resolver
	usage    *usageBuffer // nil without a recorder
	typeMap  *pgtype.Map
	types    sync.Map // typeKey → pgjson.Type, for OIDs not built in
	// paramTypes holds the parameter types of statements seen (describe.go).
	paramTypes paramTypeCache
	budget     *byteBudget
}

// New returns a Handler. usage may be nil. Rows-queried counts reach usage
// from a background goroutine, summed per database while a previous call
// is in progress (see FlushUsage).
func New(cfg Config, resolver dbaccess.Resolver, usage UsageRecorder) *Handler {
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	if cfg.MaxStatementTimeout <= 0 {
		cfg.MaxStatementTimeout = DefaultMaxStatementTimeout
	}
	if cfg.StatementTimeout > cfg.MaxStatementTimeout {
		cfg.StatementTimeout = cfg.MaxStatementTimeout
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = DefaultMaxRows
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.StreamStallTimeout <= 0 {
		cfg.StreamStallTimeout = DefaultStreamStallTimeout
	}
	if cfg.MaxBufferedBytesPerAccount <= 0 {
		cfg.MaxBufferedBytesPerAccount = DefaultMaxBufferedBytesPerAccount
	}
	cfg.MaxBufferedBytesPerAccount = max(cfg.MaxBufferedBytesPerAccount, cfg.MaxBytes)
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	cfg.MaxBufferedBytes = max(cfg.MaxBufferedBytes, cfg.MaxBufferedBytesPerAccount)
	if cfg.BufferWait <= 0 {
		cfg.BufferWait = DefaultBufferWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, resolver: resolver, typeMap: pgtype.NewMap(),
		budget: newByteBudget(cfg.MaxBufferedBytes, cfg.MaxBufferedBytesPerAccount, cfg.BufferWait)}
	if usage != nil {
		h.usage = newUsageBuffer(usage)
	}
	return h
}

// queryRequest is the body of POST /query.
type queryRequest struct {
	DatabaseName string             `json:"database_name"`
	QueryString  string             `json:"query_string"`
	Params       []jsonx.RawMessage `json:"params"`
	TimeoutMS    *int64             `json:"timeout_ms"`
	DataFormat   string             `json:"data_format"`
	Queries      []statementRequest `json:"queries"`
	Isolation    string             `json:"isolation_level"`
	ReadOnly     reqjson.Bool       `json:"read_only"` // a boolean or "true"/"false"
	// TxID names an interactive transaction to run in (tx.go).
	TxID string `json:"tx_id"`
	raw  []byte // the body, for a transaction held by another replica
}

type statementRequest struct {
	QueryString string             `json:"query_string"`
	Params      []jsonx.RawMessage `json:"params"`
}

func decodeRequest(w http.ResponseWriter, r *http.Request) (*queryRequest, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apierr.New(http.StatusRequestEntityTooLarge, "body_too_large",
				"the request body is larger than %d MiB; send large data with an import job", MaxRequestBytes>>20)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, apierr.New(http.StatusRequestTimeout, "body_timeout",
				"the request body did not arrive within the server's read timeout (--http-read-timeout); send the whole body promptly")
		}
		return nil, apierr.BadRequest("invalid_request", "could not read the request body: %v", err)
	}
	var req queryRequest
	if err := jsonx.Unmarshal(body, &req); err != nil {
		if field, value, ok := reqjson.BadBool(body, &queryRequest{}); ok {
			return nil, &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_field", Field: field,
				Message: fmt.Sprintf(`field %q must be true or false (a JSON boolean, or the string "true" or "false"), not %s`, field, value)}
		}
		return nil, apierr.BadRequest("invalid_json", "the request body is not a valid JSON object: %v", err)
	}
	req.raw = body
	if strings.TrimSpace(req.DatabaseName) == "" && req.TxID == "" {
		return nil, &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "database_name",
			Message: `database_name is required: the full name "account/database" of the database to query`}
	}
	return &req, nil
}

// checkNUL refuses SQL holding a NUL character, which the PostgreSQL
// protocol cannot carry (the server would drop the connection).
func checkNUL(field, sql string) error {
	if strings.IndexByte(sql, 0) >= 0 {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: field,
			Message: field + " contains a NUL character (\\u0000), which PostgreSQL cannot accept: remove it"}
	}
	return nil
}

// dataFormat reads data_format from the URL query, else the body.
func dataFormat(r *http.Request, body string) (objects bool, err error) {
	f := r.URL.Query().Get("data_format")
	if f == "" {
		f = body
	}
	switch strings.ToLower(f) {
	case "", "rows":
		return false, nil
	case "objects":
		return true, nil
	}
	return false, &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_data_format", Field: "data_format",
		Message: fmt.Sprintf("data_format %q is not supported: use rows (the default) or objects", f)}
}

// timeout returns the statement timeout of a request.
// prepare does what /query and /query/batch share once the body is valid:
// the answer format, the effective timeout and the caller's database.
func (h *Handler) prepare(r *http.Request, format string, timeoutMS *int64, database string) (objects bool, timeout time.Duration, target *dbaccess.Target, err error) {
	if objects, err = dataFormat(r, format); err != nil {
		return false, 0, nil, err
	}
	if timeout, err = h.timeout(timeoutMS); err != nil {
		return false, 0, nil, err
	}
	if target, err = h.resolver.Resolve(r.Context(), database); err != nil {
		return false, 0, nil, err
	}
	return objects, timeout, target, nil
}

func (h *Handler) timeout(ms *int64) (time.Duration, error) {
	if ms == nil || *ms == 0 {
		return h.cfg.StatementTimeout, nil
	}
	if *ms < 0 {
		return 0, &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "timeout_ms",
			Message: fmt.Sprintf("timeout_ms must be positive (milliseconds, at most %d)", h.cfg.MaxStatementTimeout.Milliseconds())}
	}
	d := time.Duration(*ms) * time.Millisecond
	if d > h.cfg.MaxStatementTimeout || d/time.Millisecond != time.Duration(*ms) {
		d = h.cfg.MaxStatementTimeout
	}
	return d, nil
}

// wantsNDJSON reports whether the client asked for a streamed answer.
func wantsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "application/x-ndjson") {
			return true
		}
	}
	return false
}

// ServeQuery serves POST /v2beta/query. It returns the error to answer
// with (register it through apierr.HandlerFunc); once it has started
// writing its answer it returns nil.
func (h *Handler) ServeQuery(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest(w, r)
	if err != nil {
		return err
	}
	if strings.TrimSpace(req.QueryString) == "" {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "query_string",
			Message: "query_string is required: the SQL to run"}
	}
	if err := checkNUL("query_string", req.QueryString); err != nil {
		return err
	}
	if req.TxID != "" {
		return h.serveTx(w, r, req, false)
	}
	objects, timeout, target, err := h.prepare(r, req.DataFormat, req.TimeoutMS, req.DatabaseName)
	if err != nil {
		return err
	}
	if wantsNDJSON(r) {
		return h.serveStream(w, r, target, req, objects, timeout, nil)
	}
	return h.serveBuffered(w, r, target, req, objects, timeout, nil)
}

// serveBuffered runs the query and answers one JSON object. With a lease
// it runs in that interactive transaction. The memory reservation is
// released (deferred) after the answer is written; an error is returned
// for the caller to write, after it.
func (h *Handler) serveBuffered(w http.ResponseWriter, r *http.Request, t *dbaccess.Target, req *queryRequest, objects bool, timeout time.Duration, lease *TxLease) error {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	sink := newBufferSink(objects, h.cfg.MaxRows, h.cfg.MaxBytes)
	defer h.spend(ctx, r, sink)() // after the answer is written
	var err error
	if lease == nil {
		err = h.run(ctx, cancel, t, req.QueryString, req.Params, sink)
	} else {
		err = h.runOn(ctx, cancel, lease.Conn, t, req.QueryString, req.Params, sink, false)
		lease.Done()
	}
	defer h.recordUsage(r.Context(), t, sink.returned)
	if err != nil {
		return h.mapError(r.Context(), ctx, timeout, err)
	}
	pre, suf := sink.parts(req.QueryString)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(pre)+len(sink.data)+len(suf)+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pre)
	_, _ = w.Write(sink.data)
	_, _ = w.Write(append(suf, '\n'))
	return nil
}

// mapError turns an execution error into the API error to answer.
func (h *Handler) mapError(reqCtx, ctx context.Context, timeout time.Duration, err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae
	}
	if apierr.ShuttingDown(reqCtx) {
		return apierr.ShutdownError() // bitd's drain timeout passed
	}
	if reqCtx.Err() != nil {
		if errors.As(context.Cause(reqCtx), &ae) {
			return ae // the server ended the request's transaction (serveTx)
		}
		return apierr.New(499, "client_closed_request", "the client closed the request; the query was cancelled")
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return apierr.New(http.StatusRequestTimeout, "query_timeout",
			"the query ran longer than its timeout of %s and was cancelled; raise timeout_ms (at most %d), make the query faster, or run long work as an export job",
			timeout, h.cfg.MaxStatementTimeout.Milliseconds())
	}
	if e := apierr.FromPg(err); e != err {
		return e
	}
	h.cfg.Logger.Error("query: database connection failed", "err", err)
	e := apierr.New(http.StatusServiceUnavailable, "database_unavailable",
		"the database connection failed while running the query; retry the request")
	e.RetryAfter = time.Second
	return e
}
