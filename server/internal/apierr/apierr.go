// Package apierr is bitd's one JSON error shape, the helpers that write it,
// and the one handler adapter (HandlerFunc): handlers return their error,
// and the adapter writes and counts it.
//
// Every non-2xx answer of the HTTP API is
//
//	{"error": "<message>", "code": "<stable_snake_case>", "request_id": "...", ...}
//
// PostgreSQL errors add sqlstate, detail, hint and position. Messages are
// written for the person reading them: they say what was wrong and how to fix
// it, and never contain a secret (key, token, password, DSN).
package apierr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error is an API error with its HTTP status.
type Error struct {
	Status     int           `json:"-"`
	Code       string        `json:"code"`
	Message    string        `json:"error"`
	RequestID  string        `json:"request_id,omitempty"`
	SQLState   string        `json:"sqlstate,omitempty"`
	Detail     string        `json:"detail,omitempty"`
	Hint       string        `json:"hint,omitempty"`
	Position   int32         `json:"position,omitempty"`
	Index      *int          `json:"index,omitempty"` // failing statement of a batch
	Field      string        `json:"field,omitempty"` // offending request field or parameter
	RetryAfter time.Duration `json:"-"`               // sets Retry-After when > 0
}

func (e *Error) Error() string { return e.Message }

// New returns an Error with the given status, code and formatted message.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common constructors. Codes are part of the wire contract: never rename one.
func BadRequest(code, format string, args ...any) *Error {
	return New(http.StatusBadRequest, code, format, args...)
}
func NotFound(format string, args ...any) *Error {
	return New(http.StatusNotFound, "not_found", format, args...)
}
func Unauthorized(format string, args ...any) *Error {
	return New(http.StatusUnauthorized, "unauthorized", format, args...)
}
func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "forbidden", format, args...)
}
func Conflict(format string, args ...any) *Error {
	return New(http.StatusConflict, "conflict", format, args...)
}

type ctxKey struct{}

// WithRequestID stores the request ID in ctx (the request-ID middleware does this).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request ID stored in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// FromPg converts a PostgreSQL error into a 400 that keeps SQLSTATE, detail,
// hint and position. Other errors are returned unchanged (nil stays nil).
func FromPg(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	status, code := http.StatusBadRequest, "sql_error"
	class, hint := "", pe.Hint
	if len(pe.Code) == 5 {
		class = pe.Code[:2]
	}
	switch {
	case pe.Code == "57014": // query_canceled: statement_timeout or cancel
		status, code = http.StatusRequestTimeout, "query_timeout"
	case pe.Code == "42501":
		code = "permission_denied"
	case class == "53": // insufficient resources
		status, code = http.StatusServiceUnavailable, "database_busy"
	case pe.Code == "08P01": // protocol_violation: what the client sent (a NUL byte in the SQL text, most often)
		code = "invalid_request"
		if hint == "" {
			hint = "PostgreSQL could not read the request; a NUL character (\\u0000) in the query string or a text parameter is the usual cause: remove it"
		}
	case class == "57" || class == "08": // operator intervention, connection
		status, code = http.StatusServiceUnavailable, "database_unavailable"
	case class == "28": // invalid authorization: bitd's own login to the database failed
		status, code = http.StatusServiceUnavailable, "database_unavailable"
		pe = &pgconn.PgError{Code: pe.Code, Message: "bitd could not log in to the database; retry shortly"}
		hint = ""
	}
	e := &Error{Status: status, Code: code, Message: pe.Message, SQLState: pe.Code,
		Detail: pe.Detail, Hint: hint, Position: pe.Position}
	if status == http.StatusServiceUnavailable {
		e.RetryAfter = time.Second
	}
	return e
}

// As converts any error into an *Error: API errors pass through, PostgreSQL
// errors become 400s, a context that ended becomes 408 or 499, and anything
// else is a 500 "internal" whose message hides the cause (it is logged).
func As(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var se statusError
	if errors.As(err, &se) {
		return &Error{Status: se.HTTPStatus(), Code: se.ErrorCode(), Message: se.Error(), SQLState: se.SQLState(),
			RetryAfter: time.Second}
	}
	if e := FromPg(err); e != err {
		return e.(*Error)
	}
	if Unavailable(err) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "database_unavailable",
			Message:    "the database server is unreachable or restarting; retry shortly",
			RetryAfter: time.Second}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return New(http.StatusRequestTimeout, "query_timeout", "the request ran past its deadline; raise timeout_ms (up to the server maximum) or use an export job for long work")
	case errors.Is(err, context.Canceled):
		return New(499, "client_closed_request", "the client closed the request")
	}
	return New(http.StatusInternalServerError, "internal", "internal server error; the request ID identifies it in the server log")
}

// statusError is an error that carries its own answer, possibly wrapped in
// a connection error: a refusal by bitd's connection budget
// (connbudget.Error), which a client may retry after a second.
type statusError interface {
	error
	HTTPStatus() int
	ErrorCode() string
	SQLState() string
}

// Unavailable reports whether err means the PostgreSQL server could not be
// reached or dropped the connection (a restart, a failover, a network cut):
// the request may succeed if retried, so it answers 503 with Retry-After
// rather than 500.
func Unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var oe *net.OpError
	switch {
	case errors.As(err, &ce), errors.As(err, &oe),
		errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
	}
	return false
}

// Write sends err as the JSON error body. 5xx causes are logged with the
// request ID; the cause itself never reaches the client.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	write(w, r, err)
}

// write is Write; it returns the code it answered.
func write(w http.ResponseWriter, r *http.Request, err error) (code string) {
	e := As(err)
	out := *e
	out.RequestID = RequestID(r.Context())
	if e.Status >= 500 {
		slog.ErrorContext(r.Context(), "request failed", "request_id", out.RequestID, "status", e.Status, "err", err)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	WriteJSON(w, e.Status, &out)
	return e.Code
}

// WriteJSON writes v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := jsonx.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal server error: response encoding failed","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ErrShuttingDown is the cause with which bitd cancels the requests still
// running when its drain timeout passes (context.Cause of their contexts).
var ErrShuttingDown = errors.New("bitd is shutting down")

// ShuttingDown reports whether ctx was cancelled because bitd is shutting
// down (ErrShuttingDown), not because its client left.
func ShuttingDown(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrShuttingDown)
}

// ShutdownError is the 503 of a request (or the last line of a stream) that
// bitd ended because its drain timeout passed.
func ShutdownError() *Error {
	return New(http.StatusServiceUnavailable, "shutting_down",
		"bitd is shutting down and ended this request when its drain timeout passed: send it again (another bitd answers it)")
}
