package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// nullParam is the -p value that binds SQL NULL, as in PostgreSQL's COPY
// text format.
const nullParam = `\N`

func queryCommand() *command {
	return &command{
		name:     "query",
		synopsis: "-d DB (-q SQL | -qf FILE|-) [-p VALUE]... [-o FILE] [--objects] [--timeout DURATION] [--format json|table|csv|ndjson]",
		summary:  "run SQL against a database",
		long: `The SQL may also be given as the single argument. Several statements may be
given; the result is the last one's.

-p binds $1, $2, ... in order. Every value is sent as text and PostgreSQL
converts it to the parameter's type (write $1::int when the type cannot be
inferred). The value \N binds SQL NULL. Values are never spliced into the SQL,
so quotes in them stay data.

Formats: json (default) prints the bit.io result object
  {"query_string","metadata","data","columns","row_count","command"}
with rows as arrays, or as objects with --objects; int8 and numeric values
keep all their digits. table prints aligned columns; csv prints an RFC 4180
header and rows (CRLF line ends, NULL as an empty unquoted field, the empty
string as ""); ndjson prints one JSON array (or object with --objects) per
row. csv and ndjson stream: rows are written as they arrive and memory stays
flat however large the result.`,
		maxArgs: 1,
		flags: func(fs *flagSet) {
			dbFlag(fs)
			fs.add(&option{names: []string{"-q", "--query"}, metavar: "SQL", help: "the SQL to run"})
			fs.add(&option{names: []string{"-qf", "--query-file", "--query_file"}, metavar: "FILE", help: "read the SQL from FILE (- for stdin)"})
			fs.add(&option{names: []string{"-p", "--param"}, metavar: "VALUE", repeat: true, help: `bind parameter $1, $2, ... (repeat; sent as text; \N is NULL)`})
			fs.add(&option{names: []string{"-o", "--output"}, metavar: "FILE", optional: outputValue,
				help: "write the result to FILE instead of stdout (replaced only when complete);\n-o with no file after it is --objects, as in python-bitdotio"})
			fs.add(&option{names: []string{"--objects"}, help: "rows as JSON objects keyed by column name instead of arrays"})
			fs.add(&option{names: []string{"--timeout"}, metavar: "DURATION", help: "statement timeout, e.g. 30s or 2m (default: the server's)"})
			fs.add(&option{names: []string{"--format"}, metavar: "FORMAT", choices: []string{fmtJSON, fmtTable, fmtCSV, fmtNDJSON},
				help: "json (default), table, csv or ndjson (csv and ndjson stream)"})
		},
		run: runQuery,
	}
}

// outputValue reports whether the argument after -o is its file: "-" or
// anything not starting with '-'. python-bitdotio's `bit query -o` meant
// --objects; a -o followed by a flag or nothing still does.
func outputValue(next string) bool { return next == "-" || !strings.HasPrefix(next, "-") }

// querySQL reads the SQL from -q, -qf or the argument.
func (inv *invocation) querySQL() (string, error) {
	var sources []string
	q := inv.opt("--query")
	if q.set {
		sources = append(sources, "-q")
	}
	qf := inv.opt("--query-file")
	if qf.set {
		sources = append(sources, "-qf")
	}
	if len(inv.args) == 1 {
		sources = append(sources, "an argument")
	}
	if len(sources) == 0 {
		return "", usagef(inv.cmd, "missing SQL: give -q SQL, -qf FILE (- for stdin) or the SQL as the argument")
	}
	if len(sources) > 1 {
		return "", usagef(inv.cmd, "SQL given more than once (%s): give exactly one", strings.Join(sources, " and "))
	}
	var sql string
	switch {
	case q.set:
		sql = q.str("")
	case qf.set:
		name := qf.str("")
		var b []byte
		var err error
		if name == "-" {
			b, err = io.ReadAll(inv.app.stdin)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return "", fmt.Errorf("read the SQL from %s: %w", displayName(name), err)
		}
		sql = string(b)
	default:
		sql = inv.args[0]
	}
	if strings.TrimSpace(sql) == "" {
		return "", usagef(inv.cmd, "the SQL is empty")
	}
	return sql, nil
}

func displayName(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

func runQuery(ctx context.Context, inv *invocation) error {
	sql, err := inv.querySQL()
	if err != nil {
		return err
	}
	dbName := inv.str("--database")
	if dbName == "" {
		return usagef(inv.cmd, "missing -d/--database NAME (account/db, or db in your own account)")
	}
	format, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV, fmtNDJSON)
	if err != nil {
		return err
	}
	req := core.QueryRequest{SQL: sql}
	for _, p := range inv.opt("--param").vals {
		if p == nullParam {
			req.Params = append(req.Params, nil)
		} else {
			req.Params = append(req.Params, p)
		}
	}
	if s := inv.str("--timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return usagef(inv.cmd, "--timeout takes a positive duration such as 30s or 2m, not %q", s)
		}
		req.Timeout = d
	}
	objects := inv.opt("--objects").on()
	if o := inv.opt("--output"); o.set && o.str("") == "" {
		objects = true // python-bitdotio's -o/--objects
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	if req.Database, err = fullDBName(ctx, c, inv, dbName); err != nil {
		return err
	}
	return inv.writeOutput(func(w io.Writer) error {
		switch format {
		case fmtNDJSON, fmtCSV:
			return withSQL(sql, streamQuery(ctx, c, req, w, format, objects))
		}
		res, err := c.QueryWith(ctx, req)
		if err != nil {
			return withSQL(sql, err)
		}
		if format == fmtTable {
			return writeResultTable(w, res)
		}
		return writeJSON(w, resultJSON(res, objects))
	})
}

// writeOutput runs write against stdout, or against a temporary file next
// to -o FILE that replaces FILE only when write succeeded.
func (inv *invocation) writeOutput(write func(w io.Writer) error) error {
	out := inv.str("--output")
	if out == "" || out == "-" {
		return write(inv.app.out)
	}
	return writeFileAtomic(out, write)
}

// writeFileAtomic writes name through a temporary file in the same
// directory, renamed over name only when write and the close succeed; on
// failure name is left as it was.
func writeFileAtomic(name string, write func(w io.Writer) error) error {
	dir, base := ".", name
	if i := strings.LastIndexByte(name, os.PathSeparator); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	f, err := os.CreateTemp(dir, "."+base+".partial-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := newBufferedWriter(f)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	ok = true
	return nil
}

// queryResult is the bit.io-compatible JSON result object.
type queryResult struct {
	QueryString string            `json:"query_string"`
	Metadata    map[string]string `json:"metadata"`
	Data        any               `json:"data"`
	Columns     []core.Column     `json:"columns"`
	RowCount    int64             `json:"row_count"`
	Command     string            `json:"command,omitempty"`
}

func resultJSON(res *core.Result, objects bool) queryResult {
	qr := queryResult{
		QueryString: res.Query,
		Metadata:    res.Metadata,
		Columns:     res.Columns,
		RowCount:    res.RowCount,
		Command:     res.Command,
	}
	if qr.Metadata == nil {
		qr.Metadata = map[string]string{}
	}
	if qr.Columns == nil {
		qr.Columns = []core.Column{}
	}
	names := columnNames(res.Columns)
	if objects {
		data := make([]orderedRow, len(res.Rows))
		for i, r := range res.Rows {
			data[i] = orderedRow{names: names, vals: r}
		}
		qr.Data = data
	} else {
		rows := res.Rows
		if rows == nil {
			rows = [][]any{}
		}
		qr.Data = rows
	}
	return qr
}

func columnNames(cols []core.Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// orderedRow is a row as a JSON object whose keys keep the column order.
// When two columns share a name, the later value wins at the first
// position, as a dict built from the row would.
type orderedRow struct {
	names []string
	vals  []any
}

// MarshalJSON writes the row as {"col": value, ...} in column order.
func (r orderedRow) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := appendObject(&buf, r.names, r.vals); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func appendObject(buf *bytes.Buffer, names []string, vals []any) error {
	buf.WriteByte('{')
	written := 0
	for i, n := range names {
		last := i
		dup := false
		for j := range names {
			if names[j] == n {
				if j < i {
					dup = true
					break
				}
				last = j
			}
		}
		if dup {
			continue
		}
		if written > 0 {
			buf.WriteByte(',')
		}
		written++
		k, err := jsonx.Marshal(n)
		if err != nil {
			return err
		}
		buf.Write(k)
		buf.WriteByte(':')
		var v any
		if last < len(vals) {
			v = vals[last]
		}
		b, err := jsonx.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode column %q: %w", n, err)
		}
		buf.Write(b)
	}
	buf.WriteByte('}')
	return nil
}

// writeResultTable prints the result as aligned columns with a "(N rows)"
// footer, or the command tag for a statement that returns no columns.
func writeResultTable(w io.Writer, res *core.Result) error {
	if len(res.Columns) == 0 {
		tag := res.Command
		if tag == "" {
			tag = "OK"
		}
		_, err := fmt.Fprintln(w, tag)
		return err
	}
	if err := writeTable(w, columnNames(res.Columns), res.Rows); err != nil {
		return err
	}
	n := len(res.Rows)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	_, err := fmt.Fprintf(w, "(%s row%s)\n", strconv.Itoa(n), plural)
	return err
}
