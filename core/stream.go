package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"strings"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// Stream is a query result read row by row from an NDJSON answer
// (Content-Type application/x-ndjson): a header line with the columns, one
// JSON array per row, and a trailer line with the row count or an error.
// Rows are decoded as they arrive; the result is never held in memory.
//
// Use Next/Scan/Err or All, then Close. A Stream is not safe for concurrent
// use. Closing it before the end closes the connection, which makes the
// server stop the query.
type Stream struct {
	dec     *streamDecoder
	body    io.Closer
	ctx     context.Context
	cur     *Row
	err     error
	closed  bool
	fromDoc *Result // set when the server answered plain JSON instead of NDJSON
	docIdx  int
}

// Row is one row of a Stream.
type Row struct {
	cols   []Column
	values []any
}

// Values returns the row's values in column order (see Result for their types).
func (r *Row) Values() []any { return r.values }

// Columns returns the columns of the row.
func (r *Row) Columns() []Column { return r.cols }

// Scan copies the row's values into dest, like Result.Scan.
func (r *Row) Scan(dest ...any) error { return scanRow(r.cols, r.values, dest) }

// ScanStruct copies the row into the struct dest points to, matching fields
// to columns like ScanAll.
func (r *Row) ScanStruct(dest any) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("core: ScanStruct: %T is not a pointer to a struct", dest)
	}
	plan, err := planFor(rv.Elem().Type(), r.cols)
	if err != nil {
		return err
	}
	return plan.fill(rv.Elem(), r.cols, r.values)
}

// postStream sends q asking for an NDJSON answer; the caller reads and
// closes the body.
func (c *Client) postStream(ctx context.Context, q QueryRequest) (*Response, error) {
	if err := checkQuery(q.Database, q.SQL); err != nil {
		return nil, err
	}
	return c.do(ctx, &request{method: "POST", path: apiPrefix + "/query", stream: true,
		header: Header{"Accept": {"application/x-ndjson"}},
		body:   queryBody{Database: q.Database, SQL: q.SQL, Params: q.Params, TimeoutMS: c.timeoutMS(ctx, q.Timeout), TxID: q.txID}}, nil)
}

// QueryStream runs q and returns its rows as a stream. The header (columns)
// has been read when it returns; errors before the first row come back here
// as an *APIError, errors after it from Err. The caller must Close the stream.
// The request is never retried once the server has answered.
func (c *Client) QueryStream(ctx context.Context, q QueryRequest) (*Stream, error) {
	resp, err := c.postStream(ctx, q)
	if err != nil {
		return nil, err
	}
	s := &Stream{body: resp.Body, ctx: ctx}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// A server without streaming answered the whole result.
		defer resp.Body.Close()
		var rb resultBody
		if err := decodeJSON(resp.Body, &rb); err != nil {
			return nil, fmt.Errorf("core: QueryStream: decoding the answer: %w", err)
		}
		r, err := rb.result(false)
		if err != nil {
			return nil, err
		}
		s.fromDoc = r
		return s, nil
	}
	s.dec = newStreamDecoder(resp.Body)
	if err := s.dec.readHeader(); err != nil {
		resp.Body.Close()
		return nil, s.wrap(err)
	}
	return s, nil
}

// QueryStreamBody runs q like QueryStream but leaves the answer's body to
// the caller, for a program that decodes the NDJSON itself (the browser
// client hands it to JavaScript unread). Errors before the answer (a refused
// request, a non-2xx status) come back as *APIError like QueryStream's; an
// error line in the body is the caller's to read. When the server answered
// one JSON document instead of a stream, the body is that result rewritten
// as NDJSON (header, rows, trailer). The caller closes the body; closing it
// before the end stops the query on the server.
func (c *Client) QueryStreamBody(ctx context.Context, q QueryRequest) (io.ReadCloser, error) {
	resp, err := c.postStream(ctx, q)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	var rb resultBody
	if err := decodeJSON(resp.Body, &rb); err != nil {
		return nil, fmt.Errorf("core: QueryStreamBody: decoding the answer: %w", err)
	}
	r, err := rb.result(false)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	line := func(v any) error {
		b, err := jsonx.Marshal(v)
		if err != nil {
			return fmt.Errorf("core: QueryStreamBody: re-encoding the result: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
		return nil
	}
	cols := r.Columns
	if cols == nil {
		cols = []Column{}
	}
	if err := line(map[string]any{"columns": cols}); err != nil {
		return nil, err
	}
	for _, row := range r.Rows {
		if err := line(row); err != nil {
			return nil, err
		}
	}
	if err := line(map[string]any{"row_count": r.RowCount, "command": r.Command}); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

func (s *Stream) wrap(err error) error {
	if s.ctx != nil && s.ctx.Err() != nil {
		var ae *APIError
		if !errors.As(err, &ae) {
			return fmt.Errorf("core: query stream: %w", s.ctx.Err())
		}
	}
	return err
}

// Columns returns the result columns.
func (s *Stream) Columns() []Column {
	if s.fromDoc != nil {
		return s.fromDoc.Columns
	}
	return s.dec.cols
}

// Next advances to the next row and reports whether there is one. After
// false, Err tells whether the stream ended cleanly.
func (s *Stream) Next() bool {
	if s.closed || s.err != nil {
		return false
	}
	if s.fromDoc != nil {
		if s.docIdx >= len(s.fromDoc.Rows) {
			s.cur = nil
			return false
		}
		s.cur = &Row{cols: s.fromDoc.Columns, values: s.fromDoc.Rows[s.docIdx]}
		s.docIdx++
		return true
	}
	vals, err := s.dec.next()
	if err != nil {
		if err != io.EOF {
			s.err = s.wrap(err)
		}
		s.cur = nil
		return false
	}
	s.cur = &Row{cols: s.dec.cols, values: vals}
	return true
}

// Row returns the current row (after Next returned true).
func (s *Stream) Row() *Row { return s.cur }

// Scan copies the current row into dest, like Result.Scan.
func (s *Stream) Scan(dest ...any) error {
	if s.cur == nil {
		return errors.New("core: Stream.Scan called without a current row; call Next first")
	}
	return s.cur.Scan(dest...)
}

// Err returns the error that ended the stream: nil after a clean end
// (trailer received), an *APIError for an error trailer, an error wrapping
// io.ErrUnexpectedEOF for a stream cut before its trailer, or a context error.
func (s *Stream) Err() error { return s.err }

// RowCount returns the number of rows: from the trailer once the stream
// ended cleanly, else the rows read so far.
func (s *Stream) RowCount() int64 {
	if s.fromDoc != nil {
		return s.fromDoc.RowCount
	}
	if s.dec.done && s.dec.rowCount >= 0 {
		return s.dec.rowCount
	}
	return s.dec.rows
}

// Command returns the command tag from the trailer ("" before it).
func (s *Stream) Command() string {
	if s.fromDoc != nil {
		return s.fromDoc.Command
	}
	return s.dec.command
}

// Close closes the answer body; closing before the end stops the query on
// the server. It is safe to call more than once.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.body != nil {
		return s.body.Close()
	}
	return nil
}

// All returns the rows as an iterator for range-over-func. A final pair
// (nil, err) reports an error that ended the stream. The stream is closed
// when the loop ends, also by break.
func (s *Stream) All() iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		defer s.Close()
		for s.Next() {
			if !yield(s.cur, nil) {
				return
			}
		}
		if s.err != nil {
			yield(nil, s.err)
		}
	}
}

// streamDecoder parses the NDJSON query stream. It accepts:
//
//	header:  {"columns":[{"name":..,"type":..,"type_oid":..}], ...}
//	row:     [v1, v2, ...]  (or {"row":[...]}/{"type":"row","values":[...]})
//	trailer: {"row_count":N,"command":"SELECT N"}  or  {"error":{"error":"..","code":..,...}}
//	         (a flat {"error":"..","code":..} is accepted too)
//
// Lines may also carry "type": "header" | "row" | "trailer" | "error".
type streamDecoder struct {
	dec      *jsonx.Decoder
	cols     []Column
	rows     int64
	rowCount int64
	command  string
	done     bool
}

func newStreamDecoder(r io.Reader) *streamDecoder {
	d := jsonx.NewDecoder(r)
	d.UseNumber()
	return &streamDecoder{dec: d, rowCount: -1}
}

// errCut is returned for a stream that ended before its trailer.
func errCut(what string) error {
	return fmt.Errorf("core: query stream ended %s without its trailer; the connection was cut or the server stopped: %w", what, io.ErrUnexpectedEOF)
}

func (d *streamDecoder) value() (any, error) {
	var v any
	if err := d.dec.Decode(&v); err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errCut(fmt.Sprintf("after %d rows", d.rows))
		}
		return nil, fmt.Errorf("core: query stream: malformed line after %d rows: %w", d.rows, err)
	}
	return v, nil
}

func (d *streamDecoder) readHeader() error {
	v, err := d.value()
	if err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("core: query stream: the first line is not a header object")
	}
	if _, isErr := m["error"]; isErr {
		d.done = true
		return streamError(m)
	}
	cols, ok := m["columns"]
	if !ok {
		return errors.New("core: query stream: the header line has no columns")
	}
	b, err := jsonx.Marshal(cols)
	if err == nil {
		err = jsonx.Unmarshal(b, &d.cols)
	}
	if err != nil {
		return fmt.Errorf("core: query stream: bad columns in the header: %w", err)
	}
	if t, ok := m["type"].(string); ok && t != "header" {
		return fmt.Errorf("core: query stream: the first line has type %q, want header", t)
	}
	return nil
}

// next returns the next row's values, io.EOF after a clean trailer, or an error.
func (d *streamDecoder) next() ([]any, error) {
	if d.done {
		return nil, io.EOF
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case []any:
		return d.row(x)
	case map[string]any:
		typ, _ := x["type"].(string)
		if _, isErr := x["error"]; isErr || typ == "error" {
			d.done = true
			return nil, streamError(x)
		}
		if r, ok := x["row"].([]any); ok {
			return d.row(r)
		}
		if r, ok := x["values"].([]any); ok && typ == "row" {
			return d.row(r)
		}
		if typ != "" && typ != "trailer" {
			return nil, fmt.Errorf("core: query stream: unexpected line type %q after %d rows", typ, d.rows)
		}
		d.done = true
		if n, ok := x["row_count"].(jsonx.Number); ok {
			if c, err := n.Int64(); err == nil {
				d.rowCount = c
			}
		}
		d.command, _ = x["command"].(string)
		// Nothing may follow the trailer.
		var extra any
		if err := d.dec.Decode(&extra); err != io.EOF {
			return nil, fmt.Errorf("core: query stream: data after the trailer")
		}
		return nil, io.EOF
	case nil:
		return nil, fmt.Errorf("core: query stream: null line after %d rows", d.rows)
	default:
		return nil, fmt.Errorf("core: query stream: unexpected %T line after %d rows", v, d.rows)
	}
}

func (d *streamDecoder) row(vals []any) ([]any, error) {
	if len(d.cols) > 0 && len(vals) != len(d.cols) {
		return nil, fmt.Errorf("core: query stream: row %d has %d values for %d columns", d.rows, len(vals), len(d.cols))
	}
	d.rows++
	return vals, nil
}

// streamError converts an error trailer into an *APIError.
func streamError(m map[string]any) error {
	if inner, ok := m["error"].(map[string]any); ok {
		// bitd's shape: {"error": {"error": "<message>", "code": ..., ...}}
		m = inner
	}
	e := &APIError{}
	str := func(k string) string { s, _ := m[k].(string); return s }
	e.Message, e.Code, e.RequestID = str("error"), str("code"), str("request_id")
	if e.Message == "" {
		e.Message = str("message")
	}
	e.SQLState, e.Detail, e.Hint, e.Field = str("sqlstate"), str("detail"), str("hint"), str("field")
	if n, ok := m["index"].(jsonx.Number); ok {
		if i, err := n.Int64(); err == nil {
			idx := int(i)
			e.Index = &idx
		}
	}
	if n, ok := m["position"].(jsonx.Number); ok {
		p, _ := n.Int64()
		e.Position = int(p)
	}
	if n, ok := m["status"].(jsonx.Number); ok {
		s, _ := n.Int64()
		e.StatusCode = int(s)
	}
	if e.StatusCode == 0 {
		switch {
		case e.Code == "query_timeout":
			e.StatusCode = 408
		case e.Code == "result_too_large" || e.Code == "body_too_large" || e.Code == "too_large":
			e.StatusCode = 413
		case e.Code == "database_busy" || e.Code == "database_unavailable":
			e.StatusCode = 503
		case e.SQLState != "":
			e.StatusCode = 400
		default:
			e.StatusCode = 500
		}
	}
	if e.Message == "" {
		e.Message = "the query failed while streaming"
	}
	return e
}
