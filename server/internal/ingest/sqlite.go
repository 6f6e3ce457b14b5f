package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// sqliteReader reads one table of a SQLite file. INTEGER and REAL values are
// numbers, TEXT is text, BLOB is bytes (bytea), NULL is NULL.
type sqliteReader struct {
	db    *sql.DB
	rows  *sql.Rows
	names []string
	vals  []any
	ptrs  []any
	cells []Cell
	n     int64
	table string
}

func invalidSQLite(err error) error {
	return &Error{Type: "invalid_sqlite", Message: fmt.Sprintf("the file is not a readable SQLite database (%v): send a SQLite 3 database file", err)}
}

func openSQLiteDB(path string) (*sql.DB, error) {
	src, err := File(path)
	if err != nil {
		return nil, err
	}
	head, err := readHead(context.Background(), src, 16)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(head, []byte("SQLite format 3\x00")) {
		return nil, &Error{Type: "invalid_sqlite", Message: "the file is not a SQLite database (it does not start with the SQLite 3 header): send a SQLite 3 database file or name the right format"}
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return nil, invalidSQLite(err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func openSQLite(ctx context.Context, path, table string) (*sqliteReader, error) {
	db, err := openSQLiteDB(path)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT * FROM "`+sqliteQuote(table)+`"`)
	if err != nil {
		db.Close()
		return nil, invalidSQLite(err)
	}
	names, err := rows.Columns()
	if err != nil {
		rows.Close()
		db.Close()
		return nil, invalidSQLite(err)
	}
	s := &sqliteReader{db: db, rows: rows, names: names, table: table}
	s.vals = make([]any, len(names))
	s.ptrs = make([]any, len(names))
	for i := range s.vals {
		s.ptrs[i] = &s.vals[i]
	}
	return s, nil
}

func sqliteQuote(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte(`"`), []byte(`""`)))
}

func (s *sqliteReader) Next() ([]Cell, error) {
	if !s.rows.Next() {
		if err := s.rows.Err(); err != nil {
			return nil, invalidSQLite(err)
		}
		return nil, io.EOF
	}
	if err := s.rows.Scan(s.ptrs...); err != nil {
		return nil, invalidSQLite(err)
	}
	s.n++
	s.cells = s.cells[:0]
	for _, v := range s.vals {
		var c Cell
		switch v := v.(type) {
		case nil:
		case int64:
			c = Cell{Kind: Number, S: strconv.FormatInt(v, 10)}
		case float64:
			c = Cell{Kind: Number, S: strconv.FormatFloat(v, 'g', -1, 64)}
		case string:
			if v != "" {
				c = Cell{Kind: Text, S: v}
			}
		case []byte:
			c = Cell{Kind: Bytes, S: string(v)}
		case bool:
			c = Cell{Kind: Bool, S: strconv.FormatBool(v)}
		case time.Time:
			c = Cell{Kind: Text, S: v.Format(time.RFC3339Nano)}
		default:
			c = Cell{Kind: Text, S: fmt.Sprint(v)}
		}
		s.cells = append(s.cells, c)
	}
	return s.cells, nil
}

func (s *sqliteReader) Names() []string  { return s.names }
func (s *sqliteReader) Line() int64      { return s.n }
func (s *sqliteReader) BytesRead() int64 { return 0 }
func (s *sqliteReader) Close() error {
	s.rows.Close()
	return s.db.Close()
}

// sqliteTables plans one table per SQLite table (or the one named).
func sqliteTables(ctx context.Context, path string, opts Options) ([]*TablePlan, error) {
	db, err := openSQLiteDB(path)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		db.Close()
		return nil, invalidSQLite(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			db.Close()
			return nil, invalidSQLite(err)
		}
		tables = append(tables, n)
	}
	err = rows.Err()
	rows.Close()
	db.Close()
	if err != nil {
		return nil, invalidSQLite(err)
	}
	if opts.SQLiteTable != "" {
		found := false
		for _, t := range tables {
			found = found || t == opts.SQLiteTable
		}
		if !found {
			return nil, &Error{Type: "sqlite_table_not_found", Message: fmt.Sprintf("the SQLite file has no table %q (it has %q)", opts.SQLiteTable, tables),
				Details: map[string]any{"sqlite_table": opts.SQLiteTable, "sqlite_tables": tables}}
		}
		tables = []string{opts.SQLiteTable}
	}
	if len(tables) == 0 {
		return nil, &Error{Type: "empty_file", Message: "the SQLite file has no tables"}
	}
	var out []*TablePlan
	for _, st := range tables {
		name := opts.Table
		if opts.SQLiteTable == "" {
			name = TableName(opts.Table, st)
		}
		t := &TablePlan{Schema: opts.Schema, Table: name, Source: st, keyed: true}
		t.open = func() (rowReader, error) { return openSQLite(ctx, path, st) }
		if err := inferKeyedAllowEmpty(ctx, t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// inferKeyedAllowEmpty is infer for SQLite tables, where an empty table
// still has its column names.
func inferKeyedAllowEmpty(ctx context.Context, t *TablePlan) error {
	err := infer(ctx, t, HeaderNone)
	if e, ok := err.(*Error); ok && e.Type == "empty_file" {
		r, oerr := t.open()
		if oerr != nil {
			return oerr
		}
		names := r.Names()
		r.Close()
		t.Columns = make([]Column, len(names))
		for i, n := range names {
			t.Columns[i] = Column{Name: n, Type: "text"}
		}
		t.Columns = uniqueNames(t.Columns)
		return nil
	}
	return err
}
