package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// Column describes one result column.
type Column struct {
	// Name is the column name as PostgreSQL reports it.
	Name string `json:"name"`
	// Type is the PostgreSQL type name ("int8", "numeric", "timestamptz", ...).
	Type string `json:"type"`
	// TypeOID is the PostgreSQL type OID.
	TypeOID uint32 `json:"type_oid"`
}

// Result is the answer to one SQL statement.
//
// Row values are nil (NULL), bool, string (text, dates and timestamps in RFC
// 3339, bytea in base64), jsonx.Number (every number: its exact digits, so
// int8 and numeric never lose precision), []any (arrays) and map[string]any
// (json/jsonb objects). Scan and ScanAll convert them to Go types.
type Result struct {
	// Query is the SQL text the server ran.
	Query string
	// Columns lists the columns in order.
	Columns []Column
	// Metadata maps column name to PostgreSQL type name (bit.io's shape).
	Metadata map[string]string
	// Rows holds the rows as values in column order (also for DataFormat "objects").
	Rows [][]any
	// Objects holds the rows as the server sent them with DataFormat
	// "objects" (column name → value); nil otherwise.
	Objects []map[string]any
	// RowCount is the number of rows returned or affected.
	RowCount int64
	// Command is the command tag ("SELECT 2", "INSERT 0 1", ...).
	Command string
}

// QueryRequest is one SQL statement for QueryWith and QueryStream.
type QueryRequest struct {
	// Database is the full database name "account/dbname".
	Database string
	// SQL is the statement; $1, $2, ... refer to Params.
	SQL string
	// Params are the statement parameters, JSON-encoded (use strings or
	// jsonx.Number for exact int8/numeric values).
	Params []any
	// DataFormat is "rows" (default) or "objects". QueryStream always uses rows.
	DataFormat string
	// Timeout bounds the statement on the server (sent as timeout_ms). When
	// ctx has an earlier deadline, that deadline minus a small margin is sent
	// instead, so the server cancels the statement before the client gives up.
	Timeout time.Duration

	txID string // set by Tx: run in that interactive transaction
}

// Statement is one statement of a batch.
type Statement struct {
	// SQL is the statement text.
	SQL string `json:"query_string"`
	// Params are the statement parameters ($1, $2, ...).
	Params []any `json:"params,omitempty"`
}

// BatchRequest runs several statements in one transaction: all or nothing.
type BatchRequest struct {
	// Database is the full database name "account/dbname".
	Database string
	// Queries are run in order.
	Queries []Statement
	// IsolationLevel is "read committed" (server default), "repeatable read" or "serializable".
	IsolationLevel string
	// ReadOnly runs the transaction READ ONLY.
	ReadOnly bool
	// Timeout bounds the whole batch on the server (see QueryRequest.Timeout).
	Timeout time.Duration

	txID string // set by Tx: run in that interactive transaction
}

type queryBody struct {
	Database  string `json:"database_name"`
	SQL       string `json:"query_string"`
	Params    []any  `json:"params,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	TxID      string `json:"tx_id,omitempty"`
}

type batchBody struct {
	Database       string      `json:"database_name"`
	Queries        []Statement `json:"queries"`
	IsolationLevel string      `json:"isolation_level,omitempty"`
	ReadOnly       bool        `json:"read_only,omitempty"`
	TimeoutMS      int64       `json:"timeout_ms,omitempty"`
	TxID           string      `json:"tx_id,omitempty"`
}

type resultBody struct {
	QueryString string            `json:"query_string"`
	Metadata    map[string]string `json:"metadata"`
	Columns     []Column          `json:"columns"`
	Data        jsonx.RawMessage  `json:"data"`
	RowCount    *int64            `json:"row_count"`
	Command     string            `json:"command"`
}

// deadlineMargin is subtracted from the ctx deadline sent as timeout_ms, so
// that the server's timeout answer arrives before the client gives up.
const deadlineMargin = 250 * time.Millisecond

// timeoutMS returns the timeout_ms to send: the smaller of explicit and the
// time left before ctx's deadline minus a margin; 0 means none.
func (c *Client) timeoutMS(ctx context.Context, explicit time.Duration) int64 {
	d := explicit
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		margin := deadlineMargin
		if left < 4*margin {
			margin = left / 4
		}
		left -= margin
		if left < time.Millisecond {
			left = time.Millisecond
		}
		if d <= 0 || left < d {
			d = left
		}
	}
	if d <= 0 {
		return 0
	}
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return ms
}

// Query runs one SQL statement in database ("account/dbname") with args as
// its $1, $2, ... parameters and returns the whole result.
func (c *Client) Query(ctx context.Context, database, sql string, args ...any) (*Result, error) {
	return c.QueryWith(ctx, QueryRequest{Database: database, SQL: sql, Params: args})
}

func checkQuery(database, sql string) error {
	if database == "" {
		return errors.New("core: query: no database given; name it as account/dbname")
	}
	if strings.TrimSpace(sql) == "" {
		return errors.New("core: query: the SQL text is empty")
	}
	return nil
}

// QueryWith runs q and returns the whole result. Use QueryStream for results
// too large to hold in memory.
func (c *Client) QueryWith(ctx context.Context, q QueryRequest) (*Result, error) {
	if err := checkQuery(q.Database, q.SQL); err != nil {
		return nil, err
	}
	var query url.Values
	switch q.DataFormat {
	case "", "rows":
	case "objects":
		query = url.Values{"data_format": {"objects"}}
	default:
		return nil, fmt.Errorf("core: query: DataFormat %q is neither \"rows\" nor \"objects\"", q.DataFormat)
	}
	resp, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/query", query: query, stream: true,
		body: queryBody{Database: q.Database, SQL: q.SQL, Params: q.Params, TimeoutMS: c.timeoutMS(ctx, q.Timeout), TxID: q.txID}}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r, err := decodeResult(resp.Body, q.DataFormat == "objects")
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("core: query: reading the answer: %w", ctxErr)
		}
		return nil, err
	}
	return r, nil
}

// decodeResult decodes a query answer in one pass, rows straight into
// [][]any (or []map[string]any for objects) with numbers kept exact.
func decodeResult(r io.Reader, objects bool) (*Result, error) {
	var ans struct {
		resultBody
		Data any `json:"data"`
	}
	var rows [][]any
	var objs []map[string]any
	if objects {
		ans.Data = &objs
	} else {
		ans.Data = &rows
	}
	if err := decodeJSON(r, &ans); err != nil {
		return nil, fmt.Errorf("core: query: decoding the answer: %w", err)
	}
	rb := ans.resultBody
	rb.Data = nil
	res, err := rb.result(objects)
	if err != nil {
		return nil, err
	}
	if objects {
		res.Objects = objs
		res.Rows = objectRows(objs, res.Columns)
	} else {
		res.Rows = rows
	}
	if rb.RowCount == nil {
		res.RowCount = int64(len(res.Rows))
	}
	return res, nil
}

func objectRows(objs []map[string]any, cols []Column) [][]any {
	rows := make([][]any, len(objs))
	for i, o := range objs {
		row := make([]any, len(cols))
		for j, col := range cols {
			row[j] = o[col.Name]
		}
		rows[i] = row
	}
	return rows
}

// result converts a decoded answer into a Result.
func (rb *resultBody) result(objects bool) (*Result, error) {
	r := &Result{Query: rb.QueryString, Columns: rb.Columns, Metadata: rb.Metadata, Command: rb.Command}
	if len(r.Columns) == 0 && len(rb.Metadata) > 0 {
		// Older servers send only metadata: its key order is lost, so sort for stability.
		for name, typ := range rb.Metadata {
			r.Columns = append(r.Columns, Column{Name: name, Type: typ})
		}
		sortColumns(r.Columns)
	}
	if r.Metadata == nil && len(r.Columns) > 0 {
		r.Metadata = make(map[string]string, len(r.Columns))
		for _, col := range r.Columns {
			r.Metadata[col.Name] = col.Type
		}
	}
	data := rb.Data
	if len(data) > 0 && string(data) != "null" {
		if objects {
			if err := unmarshalNumbers(data, &r.Objects); err != nil {
				return nil, fmt.Errorf("core: decoding the result rows: %w", err)
			}
			r.Rows = objectRows(r.Objects, r.Columns)
		} else if err := unmarshalNumbers(data, &r.Rows); err != nil {
			return nil, fmt.Errorf("core: decoding the result rows: %w", err)
		}
	}
	if rb.RowCount != nil {
		r.RowCount = *rb.RowCount
	} else {
		r.RowCount = int64(len(r.Rows))
	}
	return r, nil
}

func sortColumns(cols []Column) {
	for i := 1; i < len(cols); i++ {
		for j := i; j > 0 && cols[j].Name < cols[j-1].Name; j-- {
			cols[j], cols[j-1] = cols[j-1], cols[j]
		}
	}
}

// unmarshalNumbers decodes data into v keeping numbers as jsonx.Number.
func unmarshalNumbers(data []byte, v any) error {
	dec := jsonx.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// decodeJSON decodes one JSON value from r keeping numbers as jsonx.Number.
func decodeJSON(r io.Reader, v any) error {
	dec := jsonx.NewDecoder(r)
	dec.UseNumber()
	return dec.Decode(v)
}

// Batch runs the statements of b in one transaction (all or nothing) and
// returns their results in order. When a statement fails, nothing is
// committed and the *APIError's Index names the failing statement.
func (c *Client) Batch(ctx context.Context, b BatchRequest) ([]*Result, error) {
	if b.Database == "" {
		return nil, errors.New("core: batch: no database given; name it as account/dbname")
	}
	if len(b.Queries) == 0 {
		return nil, errors.New("core: batch: no statements given")
	}
	for i, q := range b.Queries {
		if strings.TrimSpace(q.SQL) == "" {
			return nil, fmt.Errorf("core: batch: statement %d has empty SQL text", i)
		}
	}
	var ans struct {
		Results []resultBody `json:"results"`
	}
	_, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/query/batch",
		body: batchBody{Database: b.Database, Queries: b.Queries, IsolationLevel: b.IsolationLevel,
			ReadOnly: b.ReadOnly, TimeoutMS: c.timeoutMS(ctx, b.Timeout), TxID: b.txID}}, &ans)
	if err != nil {
		return nil, err
	}
	out := make([]*Result, len(ans.Results))
	for i := range ans.Results {
		r, err := ans.Results[i].result(false)
		if err != nil {
			return nil, fmt.Errorf("core: batch statement %d: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}
