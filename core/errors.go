package core

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// Sentinel errors matched with errors.Is against an *APIError (through its
// Is method) or, for ErrAccountNotFound, against the error of AccountID.
var (
	// ErrBadRequest matches HTTP 400 answers (bad input, SQL errors).
	ErrBadRequest = errors.New("core: bad request")
	// ErrUnauthorized matches HTTP 401: missing, wrong, revoked or expired credentials.
	ErrUnauthorized = errors.New("core: unauthorized")
	// ErrForbidden matches HTTP 403: the credentials are valid but lack permission.
	ErrForbidden = errors.New("core: forbidden")
	// ErrNotFound matches HTTP 404.
	ErrNotFound = errors.New("core: not found")
	// ErrConflict matches HTTP 409 (for example a database name already taken).
	ErrConflict = errors.New("core: conflict")
	// ErrTooLarge matches HTTP 413: a result or upload above a server limit.
	ErrTooLarge = errors.New("core: too large")
	// ErrRateLimited matches HTTP 429.
	ErrRateLimited = errors.New("core: rate limited")
	// ErrTimeout matches HTTP 408 and 504 and any answer with code
	// "query_timeout" (the server cancelled a statement at its deadline).
	ErrTimeout = errors.New("core: timeout")
	// ErrUnavailable matches HTTP 503.
	ErrUnavailable = errors.New("core: service unavailable")
	// ErrAccountNotFound is returned (wrapped) by AccountID when the account
	// named by WithAccount does not exist or is not visible to the caller.
	ErrAccountNotFound = errors.New("core: account not found")
)

// maxErrorBody caps APIError.Body.
const maxErrorBody = 64 << 10

// APIError is the error for every non-2xx answer of the API. Its fields come
// from the JSON error body ({"error": ..., "code": ..., ...}) and the
// response; errors.Is(err, ErrNotFound) and the other sentinels work through
// Is. Error() never includes the body, and URL never includes a secret.
type APIError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is the server's stable snake_case error code ("not_found", "sql_error", ...).
	Code string
	// Message is the human-readable message (the body's "error" field).
	Message string
	// RequestID identifies the request in the server log (body or X-Request-Id header).
	RequestID string
	// SQLState, Detail, Hint and Position are set for PostgreSQL errors.
	SQLState string
	Detail   string
	Hint     string
	Position int
	// Index is the failing statement of a batch (0-based), when known.
	Index *int
	// Field names the offending request field or parameter, when the server says.
	Field string
	// Method and URL name the request; URL has no user info and any
	// secret-looking query value is redacted.
	Method string
	URL    string
	// Body is the raw answer body, capped at 64 KiB.
	Body []byte
}

// Error returns "core: <status> <code>: <message>" with SQLSTATE, hint and
// request ID when present.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("core: ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteByte(' ')
		b.WriteString(e.URL)
		b.WriteString(": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Code != "" {
		b.WriteByte(' ')
		b.WriteString(e.Code)
	}
	msg := e.Message
	if msg == "" {
		msg = statusText(e.StatusCode)
	}
	b.WriteString(": ")
	b.WriteString(msg)
	if e.SQLState != "" {
		b.WriteString(" (SQLSTATE ")
		b.WriteString(e.SQLState)
		b.WriteByte(')')
	}
	if e.Index != nil {
		b.WriteString(" (statement ")
		b.WriteString(strconv.Itoa(*e.Index))
		b.WriteByte(')')
	}
	if e.Hint != "" {
		b.WriteString("; hint: ")
		b.WriteString(e.Hint)
	}
	if e.RequestID != "" {
		b.WriteString(" [request ")
		b.WriteString(e.RequestID)
		b.WriteByte(']')
	}
	return b.String()
}

// Is reports whether target is the sentinel matching this error's status or code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == 400 && e.Code != "query_timeout"
	case ErrUnauthorized:
		return e.StatusCode == 401
	case ErrForbidden:
		return e.StatusCode == 403
	case ErrNotFound:
		return e.StatusCode == 404
	case ErrConflict:
		return e.StatusCode == 409
	case ErrTooLarge:
		return e.StatusCode == 413
	case ErrRateLimited:
		return e.StatusCode == 429
	case ErrTimeout:
		return e.StatusCode == 408 || e.StatusCode == 504 || e.Code == "query_timeout"
	case ErrUnavailable:
		return e.StatusCode == 503
	}
	return false
}

// JobFailedError is returned by WaitImport, WaitExport, Import and Export
// when the job ended in state FAILED. Job holds its last state.
type JobFailedError struct {
	Job *Job
}

// Error names the job, its error type, error ID and details.
func (e *JobFailedError) Error() string {
	if e.Job == nil {
		return "core: job failed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "core: job %s failed", e.Job.ID)
	if e.Job.ErrorType != "" {
		fmt.Fprintf(&b, ": %s", e.Job.ErrorType)
	}
	if len(e.Job.ErrorDetails) > 0 {
		if d, err := jsonx.Marshal(e.Job.ErrorDetails); err == nil {
			fmt.Fprintf(&b, " %s", d)
		}
	}
	if e.Job.ErrorID != "" {
		fmt.Fprintf(&b, " (error id %s)", e.Job.ErrorID)
	}
	return b.String()
}

// accountNotFoundError names the missing account; it matches both
// ErrAccountNotFound and (through Unwrap) the underlying *APIError.
type accountNotFoundError struct {
	name string
	err  error
}

func (e *accountNotFoundError) Error() string {
	return fmt.Sprintf("core: account %q not found or not visible to these credentials; check the name given to WithAccount", e.name)
}
func (e *accountNotFoundError) Is(target error) bool { return target == ErrAccountNotFound }
func (e *accountNotFoundError) Unwrap() error        { return e.err }

// secretParams are query parameter names whose values are never shown.
var secretParams = []string{"key", "token", "password", "secret", "auth", "signature", "sig", "credential"}

// sanitizeURL drops user info and redacts secret-looking query values.
// sanitizeRawURL is sanitizeURL of an unparsed URL.
func sanitizeRawURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return sanitizeURL(u)
}

func sanitizeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	c.Fragment = ""
	c.RawFragment = ""
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = "REDACTED"
		} else {
			for k, vs := range q {
				lk := strings.ToLower(k)
				for _, s := range secretParams {
					if strings.Contains(lk, s) {
						for i := range vs {
							vs[i] = "REDACTED"
						}
						break
					}
				}
			}
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

// errorBody is the JSON shape of an error answer.
type errorBody struct {
	Error     string           `json:"error"`
	Message   string           `json:"message"`
	Code      string           `json:"code"`
	RequestID string           `json:"request_id"`
	SQLState  string           `json:"sqlstate"`
	Detail    string           `json:"detail"`
	Hint      string           `json:"hint"`
	Position  jsonx.RawMessage `json:"position"`
	Index     *int             `json:"index"`
	Field     string           `json:"field"`
}

// newAPIError builds the APIError of a non-2xx answer from its (capped) body.
func newAPIError(req *Request, resp *Response, body []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if req != nil {
		e.Method = req.Method
		e.URL = sanitizeRawURL(req.URL)
	}
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	e.Body = body
	var eb errorBody
	if err := jsonx.Unmarshal(body, &eb); err == nil {
		e.Code, e.Message = eb.Code, eb.Error
		if e.Message == "" {
			e.Message = eb.Message
		}
		if eb.RequestID != "" {
			e.RequestID = eb.RequestID
		}
		e.SQLState, e.Detail, e.Hint, e.Index, e.Field = eb.SQLState, eb.Detail, eb.Hint, eb.Index, eb.Field
		if p := strings.Trim(string(eb.Position), `"`); p != "" {
			e.Position, _ = strconv.Atoi(p)
		}
	} else if len(body) > 0 && len(body) < 512 && !strings.ContainsAny(string(body), "{<") {
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}
