// Package fnquery is the request/response logic shared by bitkit's serverless
// adapters (the AWS Lambda handler in lambda/ and the Cloudflare Worker in
// workers/): it decodes the one-off query request
// {"database", "query", "params", "data_format"}, runs it through a
// core.Client under a deadline, and turns the result or the failure into the
// JSON body and HTTP status the adapters answer.
//
// Results keep the bit.io shape of POST /v2beta/query
// ({"query_string", "metadata", "data", "columns", "row_count", "command"});
// errors keep the API's error shape ({"error", "code", "sqlstate", ...}).
// Nothing here logs, and no error text carries a credential.
package fnquery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// MaxRequestBytes caps the request body both adapters accept (1 MiB).
const MaxRequestBytes = 1 << 20

// Request is the body of a query request.
type Request struct {
	// Database is the full database name, "account/db".
	Database string `json:"database"`
	// Query is one SQL statement; $1, $2, ... refer to Params.
	Query string `json:"query"`
	// Params are the statement's parameters (JSON values; numbers keep their digits).
	Params []any `json:"params,omitempty"`
	// DataFormat is "rows" (the default: arrays in column order) or "objects".
	DataFormat string `json:"data_format,omitempty"`
	// TxID runs the statement in that interactive transaction (begun with
	// POST /v2beta/tx by the same credential); "" runs it on its own.
	TxID string `json:"tx_id,omitempty"`
}

// Error is a failure as the adapters answer it: Status is the HTTP status,
// the rest is the JSON body. It never carries a credential.
type Error struct {
	Status    int    `json:"-"`
	Message   string `json:"error"`
	Code      string `json:"code"`
	SQLState  string `json:"sqlstate,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Hint      string `json:"hint,omitempty"`
	Position  int    `json:"position,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Error returns "<code>: <message>" plus the SQLSTATE when there is one.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.SQLState != "" {
		s += " (SQLSTATE " + e.SQLState + ")"
	}
	return s
}

// JSON returns the error's JSON body.
func (e *Error) JSON() []byte {
	b, err := jsonx.Marshal(e)
	if err != nil {
		// Only strings and ints: encoding cannot fail; keep a valid body anyway.
		return []byte(`{"error":"internal error encoding an error","code":"internal"}`)
	}
	return b
}

// BadRequest returns a 400 Error with code "bad_request".
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

// MissingConfig returns the 500 Error for a missing or invalid setting,
// naming the variable (never its value) and how to set it.
func MissingConfig(name, how string) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "missing_configuration",
		Message: fmt.Sprintf("%s is not set: %s", name, how)}
}

// Decode parses and validates a request body. Unknown fields are rejected so
// that a typo ("sql" for "query") is reported instead of ignored.
func Decode(body []byte) (Request, *Error) {
	var req Request
	if len(bytes.TrimSpace(body)) == 0 {
		return req, BadRequest(`empty body: send a JSON object {"database": "account/db", "query": "select 1"}`)
	}
	if len(body) > MaxRequestBytes {
		return req, &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("the request body is %d bytes, above the %d-byte limit: pass large inputs as params of several requests or use an import job", len(body), MaxRequestBytes)}
	}
	dec := jsonx.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, BadRequest("the body is not a valid query request (%v): send a JSON object with \"database\", \"query\" and optionally \"params\" and \"data_format\"", err)
	}
	if dec.More() {
		return Request{}, BadRequest("the body holds more than one JSON value: send exactly one object")
	}
	switch {
	case strings.TrimSpace(req.Database) == "":
		return Request{}, BadRequest(`"database" is missing: name the database as "account/db"`)
	case !strings.Contains(req.Database, "/"):
		return Request{}, BadRequest(`"database" %q is not of the form "account/db"`, req.Database)
	case strings.TrimSpace(req.Query) == "":
		return Request{}, BadRequest(`"query" is missing: send one SQL statement`)
	}
	switch req.DataFormat {
	case "", "rows", "objects":
	default:
		return Request{}, BadRequest(`"data_format" %q is not "rows" or "objects"`, req.DataFormat)
	}
	return req, nil
}

// Run runs req through c with the given time limit, and returns the JSON body
// of the result. limit is also sent to bitd as the statement timeout;
// limitName says where the limit came from ("the Lambda deadline",
// "BITKIT_TIMEOUT_MS") for the timeout error's message.
func Run(ctx context.Context, c *core.Client, req Request, limit time.Duration, limitName string) ([]byte, *Error) {
	if limit <= 0 {
		return nil, timeoutError(limit, limitName)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	q := core.QueryRequest{
		Database:   req.Database,
		SQL:        req.Query,
		Params:     req.Params,
		DataFormat: "rows",
		Timeout:    limit,
	}
	var res *core.Result
	var err error
	if req.TxID != "" {
		res, err = c.ResumeTx(req.Database, req.TxID).QueryWith(ctx, q)
	} else {
		res, err = c.QueryWith(ctx, q)
	}
	if err != nil {
		return nil, Classify(err, limit, limitName)
	}
	body, err := Encode(res, req.DataFormat)
	if err != nil {
		return nil, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "encoding the result: " + err.Error()}
	}
	return body, nil
}

func timeoutError(limit time.Duration, limitName string) *Error {
	if limit <= 0 || limitName == "" {
		return &Error{Status: http.StatusGatewayTimeout, Code: "timeout",
			Message: "the query did not finish in time: make it faster, raise the limit, or run it as an export job"}
	}
	return &Error{Status: http.StatusGatewayTimeout, Code: "timeout",
		Message: fmt.Sprintf("the query did not finish within %s (%s): make it faster, raise the limit, or run it as an export job", limit.Round(time.Millisecond), limitName)}
}

// Classify turns an error of core into the Error the adapters answer:
// a deadline (local or bitd's statement timeout) is 504 "timeout"; an API
// answer keeps its status, code and PostgreSQL fields, except that bitd's 5xx
// become 502 (it is an upstream failure for the function's caller); anything
// else (bitd unreachable) is 502 "upstream_unreachable".
func Classify(err error, limit time.Duration, limitName string) *Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, core.ErrTimeout) {
		e := timeoutError(limit, limitName)
		var ae *core.APIError
		if errors.As(err, &ae) {
			e.RequestID = ae.RequestID
		}
		return e
	}
	var ae *core.APIError
	if errors.As(err, &ae) {
		e := &Error{Status: ae.StatusCode, Code: ae.Code, Message: ae.Message, SQLState: ae.SQLState,
			Detail: ae.Detail, Hint: ae.Hint, Position: ae.Position, RequestID: ae.RequestID}
		if e.Code == "" {
			e.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(ae.StatusCode)), " ", "_")
		}
		if e.Message == "" {
			e.Message = "bitd answered " + http.StatusText(ae.StatusCode)
		}
		if ae.StatusCode >= 500 {
			e.Status = http.StatusBadGateway
		}
		return e
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "canceled", Message: "the request was canceled before the query finished"}
	}
	return &Error{Status: http.StatusBadGateway, Code: "upstream_unreachable",
		Message: "bitd could not be reached (" + err.Error() + "): check BITKIT_ENDPOINT and that bitd is up"}
}

// column is one entry of the result's "columns".
type column struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	TypeOID uint32 `json:"type_oid"`
}

// result is the bit.io query result shape.
type result struct {
	QueryString string            `json:"query_string"`
	Metadata    map[string]string `json:"metadata"`
	Data        jsonx.RawMessage  `json:"data"`
	Columns     []column          `json:"columns"`
	RowCount    int64             `json:"row_count"`
	Command     string            `json:"command,omitempty"`
}

// Encode writes res in the bit.io result shape, with "data" as arrays
// (format "" or "rows") or as objects keyed by column name in column order
// ("objects"; a repeated column name keeps its first value).
func Encode(res *core.Result, format string) ([]byte, error) {
	out := result{QueryString: res.Query, Metadata: res.Metadata, RowCount: res.RowCount, Command: res.Command,
		Columns: make([]column, len(res.Columns))}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	for i, c := range res.Columns {
		out.Columns[i] = column{Name: c.Name, Type: c.Type, TypeOID: c.TypeOID}
	}
	var data bytes.Buffer
	data.WriteByte('[')
	for i, row := range res.Rows {
		if i > 0 {
			data.WriteByte(',')
		}
		if format != "objects" {
			if row == nil {
				row = []any{}
			}
			b, err := jsonx.Marshal(row)
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", i, err)
			}
			data.Write(b)
			continue
		}
		if err := writeObject(&data, res.Columns, row); err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
	}
	data.WriteByte(']')
	out.Data = data.Bytes()
	return jsonx.Marshal(out)
}

func writeObject(w *bytes.Buffer, cols []core.Column, row []any) error {
	seen := make(map[string]bool, len(cols))
	w.WriteByte('{')
	n := 0
	for j, c := range cols {
		if seen[c.Name] || j >= len(row) {
			continue
		}
		seen[c.Name] = true
		k, err := jsonx.Marshal(c.Name)
		if err != nil {
			return err
		}
		v, err := jsonx.Marshal(row[j])
		if err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
		if n > 0 {
			w.WriteByte(',')
		}
		n++
		w.Write(k)
		w.WriteByte(':')
		w.Write(v)
	}
	w.WriteByte('}')
	return nil
}
