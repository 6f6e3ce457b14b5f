// Package export streams the result of a query from PostgreSQL into a file
// with bounded memory: CSV (COPY … TO STDOUT), JSON (an array of objects),
// XLSX (Office Open XML, written with excelize's StreamWriter) and Parquet
// (parquet-go, typed columns, row groups of RowGroupRows rows).
//
// Write runs the query on the connection of tx, which the caller opens as the
// caller's role (read only) and rolls back afterwards. The query is parsed
// alone first (the extended protocol's Parse, which refuses more than one
// statement), so it is exactly one statement that returns rows and cannot
// end or leave the caller's transaction.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Formats and their content types and file extensions.
const (
	CSV     = "csv"
	JSON    = "json"
	XLS     = "xls" // an XLSX (Office Open XML) workbook, as bit.io named it
	Parquet = "parquet"
)

// ContentType returns the MIME type of a format's files.
func ContentType(format string) string {
	switch format {
	case JSON:
		return "application/json"
	case XLS:
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case Parquet:
		return "application/vnd.apache.parquet"
	}
	return "text/csv; charset=utf-8"
}

// Extension returns the file name extension of a format (with the dot).
func Extension(format string) string {
	switch format {
	case JSON:
		return ".json"
	case XLS:
		return ".xlsx"
	case Parquet:
		return ".parquet"
	}
	return ".csv"
}

// Valid reports whether format is a known export format.
func Valid(format string) bool {
	switch format {
	case CSV, JSON, XLS, Parquet:
		return true
	}
	return false
}

// Error is an export failure the user can act on.
type Error struct {
	Type    string
	Message string
	Details map[string]any
}

func (e *Error) Error() string { return e.Message }

// TableQuery returns the query that reads a whole table.
func TableQuery(schema, table string) string {
	if schema == "" {
		schema = "public"
	}
	return "SELECT * FROM " + pgx.Identifier{schema, table}.Sanitize()
}

// cleanQuery drops trailing semicolons and white space.
func cleanQuery(q string) string {
	return strings.TrimRight(strings.TrimSpace(q), "; \t\r\n")
}

// Write runs query on tx's connection and writes its result to w in format.
// progress, when non-nil, is called every few thousand rows. It returns the
// number of rows written.
func Write(ctx context.Context, tx pgx.Tx, format, query string, w io.Writer, progress func(rows int64)) (int64, error) {
	query = cleanQuery(query)
	if query == "" {
		return 0, &Error{Type: "invalid_request", Message: "the query is empty"}
	}
	if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'"); err != nil {
		return 0, err
	}
	pc := tx.Conn().PgConn()
	if err := checkOneQuery(ctx, pc, query); err != nil {
		return 0, err
	}
	if format == CSV {
		// query parsed alone as one statement, so it is one complete
		// statement inside the parentheses too (the newline ends a trailing
		// -- comment)
		tag, err := pc.CopyTo(ctx, w, "COPY ("+query+"\n) TO STDOUT WITH (FORMAT csv, HEADER true)")
		if err != nil {
			return 0, err
		}
		if progress != nil {
			progress(tag.RowsAffected())
		}
		return tag.RowsAffected(), nil
	}
	rr := pc.ExecPrepared(ctx, "", nil, nil, nil) // the statement checkOneQuery parsed; text results
	fields := rr.FieldDescriptions()
	var (
		sink rowSink
		err  error
	)
	switch format {
	case JSON:
		sink = newJSONSink(w, fields)
	case XLS:
		sink, err = newXLSXSink(w, fields)
	case Parquet:
		sink, err = newParquetSink(w, fields)
	default:
		err = &Error{Type: "invalid_request", Message: fmt.Sprintf("unknown export_format %q: use csv, json, xls or parquet", format)}
	}
	if err != nil {
		_, _ = rr.Close()
		return 0, err
	}
	var n int64
	for rr.NextRow() {
		n++
		if err := sink.Row(rr.Values(), n); err != nil {
			_, _ = rr.Close()
			return n, err
		}
		if n&8191 == 0 && progress != nil {
			progress(n)
		}
	}
	if _, err := rr.Close(); err != nil {
		return n, err
	}
	if err := sink.Close(); err != nil {
		return n, err
	}
	if progress != nil {
		progress(n)
	}
	return n, nil
}

// checkOneQuery parses query as the unnamed prepared statement: PostgreSQL
// refuses more than one statement there ("cannot insert multiple commands
// into a prepared statement"). A statement that returns no rows (DDL, a
// transaction command, an INSERT without RETURNING) is refused too.
func checkOneQuery(ctx context.Context, pc *pgconn.PgConn, query string) error {
	sd, err := pc.Prepare(ctx, "", query, nil)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42601" && strings.Contains(pe.Message, "multiple commands") {
		return &Error{Type: "sql_error", Message: "an export runs exactly one query: remove every statement but one " +
			"(a SELECT, VALUES, TABLE or WITH … SELECT)", Details: map[string]any{"sqlstate": pe.Code}}
	}
	if err != nil {
		return err
	}
	if len(sd.Fields) == 0 {
		return &Error{Type: "sql_error", Message: "an export query must return rows: use a SELECT, VALUES, TABLE or WITH … SELECT"}
	}
	return nil
}

// rowSink writes rows of text-format values.
type rowSink interface {
	Row(vals [][]byte, n int64) error
	Close() error
}

// PostgreSQL type OIDs the writers treat specially.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// names returns unique column names (a repeated name gets _2, _3...).
func names(fields []pgconn.FieldDescription) []string {
	out := make([]string, len(fields))
	used := map[string]bool{}
	for i, f := range fields {
		n := f.Name
		for k := 2; used[n]; k++ {
			n = fmt.Sprintf("%s_%d", f.Name, k)
		}
		used[n] = true
		out[i] = n
	}
	return out
}

// rfc3339 turns PostgreSQL's text form of a timestamp (in UTC) into RFC 3339:
// "2024-01-02 03:04:05.5+00" → "2024-01-02T03:04:05.5Z".
func rfc3339(s string, tz bool) string {
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	if tz && strings.HasSuffix(s, "+00") {
		s = s[:len(s)-3] + "Z"
	}
	return s
}
