// Package ingest turns an uploaded file into PostgreSQL tables: it detects
// the format, reads the file twice (once to infer the header and the column
// types over every row, once to load), and loads each table with COPY inside
// a transaction the caller owns, so that any failure leaves the database
// exactly as it was. For CSV the inference pass can instead run while the
// file is uploaded (ProfileCSV, handed back as Options.CSVProfile), and a
// plain CSV file goes to COPY as it is, parsed by PostgreSQL. A Speculation
// goes further: it loads a plain CSV file while it is still arriving, with
// the types of its first bytes (widened in place when exact), and
// Plan.Confirm tells whether the result is what the whole-file inference
// gives.
//
// Formats: delimited text (CSV, TSV, ; or | separated; encoding and
// delimiter detected), JSON (an array of objects or NDJSON), XLSX (Office
// Open XML spreadsheets), legacy Excel 97-2003 .xls workbooks (BIFF8, read
// by package ingest/xls) and SQLite database files.
//
// Typical use (the jobs package does this):
//
//	src, err := ingest.File(path)                 // or any Source (the jobs package streams from the blob store)
//	plan, err := ingest.Analyze(ctx, src, ingest.Options{Table: "t"})
//	// begin a transaction on the target database as the caller's role
//	rows, err := plan.Load(ctx, tx, progress)
//
// Errors a user can act on are *Error values with a stable Type code (see
// docs/jobs.md) and Details naming the line, row, column and value.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is an import failure the user can act on.
type Error struct {
	// Type is a stable snake_case code, e.g. "ragged_row" or "type_mismatch".
	Type string
	// Message says what was wrong and how to fix it.
	Message string
	// Details names the line, row, column and value where there is one.
	Details map[string]any
}

func (e *Error) Error() string { return e.Message }

// Formats accepted by Options.Format.
const (
	FormatCSV    = "csv"
	FormatJSON   = "json"
	FormatXLSX   = "xlsx"
	FormatXLS    = "xls"
	FormatSQLite = "sqlite"
)

// Header modes accepted by Options.Header.
const (
	HeaderAuto     = "auto"
	HeaderFirstRow = "first_row"
	HeaderNone     = "no_header"
)

// Options says what to import and where.
type Options struct {
	// Format forces a format (csv, tsv, json, ndjson, xlsx, xls, sqlite);
	// empty means: from FileName's extension, else from the content.
	Format string
	// FileName is the uploaded file's name (a hint for the format).
	FileName string
	// Schema (default "public") and Table name the target table.
	Schema, Table string
	// Header is auto (default), first_row or no_header.
	Header string
	// Sheet picks an XLSX or XLS sheet by name; "*" imports every sheet into its own
	// table named Table_<sheet>. Empty: the first sheet.
	Sheet string
	// SQLiteTable picks one table of a SQLite file to load into Table. Empty:
	// every table is loaded into Table_<sqlite table>.
	SQLiteTable string
	// CSVProfile, when set (see ProfileCSV) and matching the file, replaces
	// the CSV inference pass.
	CSVProfile *CSVProfile
	// Replace empties an existing target table (TRUNCATE, in the load's
	// transaction) before loading into it, keeping its columns, indexes,
	// constraints and grants. False (the default): the rows are appended.
	Replace bool
}

// Column is a target column.
type Column struct {
	Name string
	Type string // PostgreSQL type name
}

// TablePlan is one target table with its inferred columns.
type TablePlan struct {
	Schema, Table string
	Columns       []Column
	Header        bool  // the first row holds the column names
	Rows          int64 // data rows
	// Source names the sheet or SQLite table it comes from ("" for others).
	Source string
	keyed  bool      // columns come from record keys (JSON, SQLite), not from a header row
	plain  *plainCSV // set when the file goes to COPY as it is (CSVProfile.Plain)
	open   func() (rowReader, error)
	// spec is the speculation a streamed plan was made from (Speculation.Plan).
	spec *Speculation
	// appended is set by the load when the table existed.
	appended bool
	// widened counts the ALTER TABLE … TYPE of a speculative load.
	widened int
}

// Plan is the result of the inference pass.
type Plan struct {
	Format    string
	Encoding  string // CSV only
	Delimiter string // CSV only
	Tables    []*TablePlan
	Bytes     int64 // file size
	// Replace is Options.Replace: Load truncates each existing table
	// before loading into it.
	Replace bool
}

// rowReader is one pass over one table of a file.
type rowReader interface {
	Next() ([]Cell, error) // io.EOF at the end; the slice is reused
	Names() []string       // column names for keyed formats, nil for grids
	Line() int64           // position of the last row, for messages
	BytesRead() int64
	Close() error
}

// DetectFormat picks the format: opts.Format when set, else the file name's
// extension, else the first bytes of the file.
func DetectFormat(format, fileName string, head []byte) (string, error) {
	switch strings.ToLower(format) {
	case "":
	case "csv", "tsv", "txt", "text":
		return FormatCSV, nil
	case "json", "ndjson", "jsonl":
		return FormatJSON, nil
	case "xlsx":
		return FormatXLSX, nil
	case "xls":
		return FormatXLS, nil
	case "sqlite", "sqlite3", "db":
		return FormatSQLite, nil
	default:
		return "", &Error{Type: "unsupported_format", Message: fmt.Sprintf("unknown format %q: use csv, tsv, json, ndjson, xlsx or sqlite", format)}
	}
	switch strings.ToLower(filepath.Ext(fileName)) {
	case ".csv", ".tsv", ".tab", ".txt", ".psv":
		return FormatCSV, nil
	case ".json", ".ndjson", ".jsonl":
		return FormatJSON, nil
	case ".xlsx", ".xlsm":
		return FormatXLSX, nil
	case ".xls":
		return FormatXLS, nil
	case ".sqlite", ".sqlite3", ".db":
		return FormatSQLite, nil
	}
	switch {
	case bytes.HasPrefix(head, []byte("SQLite format 3\x00")):
		return FormatSQLite, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return FormatXLSX, nil
	case bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return FormatXLS, nil
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF}), " \t\r\n")
	if len(t) > 0 && (t[0] == '[' || t[0] == '{') {
		return FormatJSON, nil
	}
	return FormatCSV, nil
}

// Source is the file to import. CSV and JSON are streamed twice through
// Open; XLSX and SQLite need random access and read Path.
type Source interface {
	// Open returns a new reader from the start of the file; the caller closes it.
	Open(ctx context.Context) (io.ReadCloser, error)
	// Size is the file's length in bytes.
	Size() int64
	// Path returns a local file with the content (it may be copied there on
	// the first call).
	Path(ctx context.Context) (string, error)
}

type fileSource struct {
	path string
	size int64
}

// File returns the local file at path as a Source.
func File(path string) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &fileSource{path: path, size: st.Size()}, nil
}

func (f *fileSource) Open(context.Context) (io.ReadCloser, error) { return os.Open(f.path) }
func (f *fileSource) Size() int64                                 { return f.size }
func (f *fileSource) Path(context.Context) (string, error)        { return f.path, nil }

// Analyze runs the inference pass over src.
func Analyze(ctx context.Context, src Source, opts Options) (*Plan, error) {
	if opts.Table == "" {
		return nil, &Error{Type: "invalid_request", Message: "table_name is required"}
	}
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	switch opts.Header {
	case "":
		opts.Header = HeaderAuto
	case HeaderAuto, HeaderFirstRow, HeaderNone:
	default:
		return nil, &Error{Type: "invalid_request", Message: fmt.Sprintf("infer_header must be auto, first_row or no_header, not %q", opts.Header)}
	}
	head, err := readHead(ctx, src, sniffSize)
	if err != nil {
		return nil, err
	}
	format, err := DetectFormat(opts.Format, opts.FileName, head)
	if err != nil {
		return nil, err
	}
	p := &Plan{Format: format, Bytes: src.Size(), Replace: opts.Replace}
	if src.Size() == 0 {
		return nil, &Error{Type: "empty_file", Message: "the file is empty"}
	}
	switch format {
	case FormatCSV:
		d := DetectCSV(head)
		t := &TablePlan{Schema: opts.Schema, Table: opts.Table}
		t.open = func() (rowReader, error) { return openCSV(ctx, src, d) }
		if opts.CSVProfile.usable(src.Size(), d) {
			err = t.applyProfile(opts.CSVProfile, opts.Header)
			if opts.CSVProfile.Plain {
				t.plain = &plainCSV{src: src, delim: d.Delimiter}
			}
			p.Encoding, p.Delimiter = d.Encoding, string(d.Delimiter)
			p.Tables = []*TablePlan{t}
			break
		}
		err = infer(ctx, t, opts.Header)
		if errors.Is(err, errNotUTF8) {
			d.Encoding = EncWindows1252
			err = infer(ctx, t, opts.Header)
		}
		p.Encoding, p.Delimiter = d.Encoding, string(d.Delimiter)
		p.Tables = []*TablePlan{t}
	case FormatJSON:
		t := &TablePlan{Schema: opts.Schema, Table: opts.Table, keyed: true}
		t.open = func() (rowReader, error) { return openJSON(ctx, src) }
		err = infer(ctx, t, HeaderNone)
		p.Tables = []*TablePlan{t}
	case FormatXLSX:
		var path string
		if path, err = src.Path(ctx); err == nil {
			p.Tables, err = xlsxTables(ctx, path, opts)
		}
	case FormatSQLite:
		var path string
		if path, err = src.Path(ctx); err == nil {
			p.Tables, err = sqliteTables(ctx, path, opts)
		}
	case FormatXLS:
		var path string
		if path, err = src.Path(ctx); err == nil {
			p.Tables, err = xlsTables(ctx, path, opts)
		}
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func readHead(ctx context.Context, src Source, n int) ([]byte, error) {
	f, err := src.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return buf[:k], nil
}

// infer runs the inference pass over one table and fills its columns.
func infer(ctx context.Context, t *TablePlan, header string) error {
	r, err := t.open()
	if err != nil {
		return err
	}
	defer r.Close()
	var in Inferrer
	for n := 0; ; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		in.Add(row)
	}
	if t.keyed {
		names := r.Names()
		if len(names) == 0 {
			return &Error{Type: "empty_file", Message: "the file holds no records"}
		}
		types := in.Types(len(names), false)
		t.Columns = make([]Column, len(names))
		for i := range names {
			t.Columns[i] = Column{Name: names[i], Type: types[i]}
		}
		t.Columns = uniqueNames(t.Columns)
		t.Rows = in.Rows()
		return checkWidth(t)
	}
	return t.applyProfile(profileOf(&in), header)
}

func checkWidth(t *TablePlan) error {
	if len(t.Columns) > 1600 {
		return &Error{Type: "too_many_columns", Message: fmt.Sprintf("the file has %d columns; a PostgreSQL table holds at most 1600", len(t.Columns)),
			Details: map[string]any{"columns": len(t.Columns)}}
	}
	return nil
}

// maxIdent is PostgreSQL's identifier length limit in bytes.
const maxIdent = 63

// uniqueNames makes column names valid: trimmed, an empty name becomes
// col_<n> (1-based position), names are cut to 63 bytes on a character
// boundary, and a repeated name (compared case-insensitively) gets _2, _3...
// Case is kept; names are always quoted in SQL.
func uniqueNames(cols []Column) []Column {
	used := map[string]bool{}
	for i := range cols {
		n := strings.TrimSpace(strings.ReplaceAll(cols[i].Name, "\x00", ""))
		if n == "" {
			n = "col_" + strconv.Itoa(i+1)
		}
		n = truncIdent(n, maxIdent)
		base := n
		for k := 2; used[strings.ToLower(n)]; k++ {
			suf := "_" + strconv.Itoa(k)
			n = truncIdent(base, maxIdent-len(suf)) + suf
		}
		used[strings.ToLower(n)] = true
		cols[i].Name = n
	}
	return cols
}

func truncIdent(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// TableName makes a table name from a base name and a suffix (a sheet or a
// SQLite table): base_suffix, with characters other than letters, digits
// and _ in the suffix turned into _, cut to 63 bytes.
func TableName(base, suffix string) string {
	var sb strings.Builder
	for _, r := range suffix {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return truncIdent(base+"_"+sb.String(), maxIdent)
}
