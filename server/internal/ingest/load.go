package ingest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Progress is reported while loading.
type Progress struct {
	BytesDone int64 // bytes of the file read by the load pass
	Rows      int64 // rows loaded so far
}

// Load creates (or appends to, or with Replace empties and reloads) every
// table of the plan inside tx with COPY.
// It sets the transaction's TimeZone to UTC, so timestamps without an offset
// are read as UTC. progress, when non-nil, is called every few thousand rows
// from the calling goroutine. The caller commits or rolls back tx; on any
// error nothing must be committed.
func (p *Plan) Load(ctx context.Context, tx pgx.Tx, progress func(Progress)) (int64, error) {
	if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'"); err != nil {
		return 0, pgError(err, nil)
	}
	var total, base int64
	for _, t := range p.Tables {
		n, err := t.load(ctx, tx, p.Replace, func(pr Progress) {
			if progress != nil {
				progress(Progress{BytesDone: base + pr.BytesDone, Rows: total + pr.Rows})
			}
		})
		if err != nil {
			return total, err
		}
		total += n
		if len(p.Tables) == 1 {
			base = p.Bytes
		}
	}
	if progress != nil {
		progress(Progress{BytesDone: p.Bytes, Rows: total})
	}
	return total, nil
}

func qualified(schema, table string) string { return pgx.Identifier{schema, table}.Sanitize() }

// load runs the COPY of one table.
func (t *TablePlan) load(ctx context.Context, tx pgx.Tx, replace bool, progress func(Progress)) (int64, error) {
	cols, err := t.prepare(ctx, tx, replace)
	if err != nil {
		return 0, err
	}
	if t.spec != nil {
		return t.loadSpeculative(ctx, tx, cols)
	}
	if t.plain != nil {
		return t.loadPlain(ctx, tx, cols, progress)
	}
	r, err := t.open()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	enc := &copyEncoder{ctx: ctx, r: r, width: len(t.Columns), skip: t.Header, progress: progress}
	sql := "COPY " + qualified(t.Schema, t.Table) + " (" + strings.Join(cols, ", ") + ") FROM STDIN WITH (FORMAT csv)"
	enc.start()
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, enc, sql)
	enc.stop()
	if enc.err != nil {
		return enc.rows, enc.err
	}
	if err != nil {
		return enc.rows, pgError(err, t)
	}
	if progress != nil {
		progress(Progress{BytesDone: r.BytesRead(), Rows: tag.RowsAffected()})
	}
	return tag.RowsAffected(), nil
}

// prepare creates the table, or matches the file's columns with the
// existing table's (and, with replace, empties it), and returns the quoted
// target column of each file column.
func (t *TablePlan) prepare(ctx context.Context, tx pgx.Tx, replace bool) ([]string, error) {
	var exists bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))`, t.Schema, t.Table).Scan(&exists)
	if err != nil {
		return nil, pgError(err, t)
	}
	target := make([]string, len(t.Columns)) // target column for each file column
	t.appended = exists
	if exists && t.spec != nil {
		t.spec.freeTypes() // appending: the inferred types are not used
	}
	if exists {
		if target, err = t.matchColumns(ctx, tx); err != nil {
			return nil, err
		}
		// TRUNCATE keeps the table (indexes, constraints, grants); the
		// caller's rollback on any later error brings the old rows back.
		if replace {
			if _, err := tx.Exec(ctx, "TRUNCATE "+qualified(t.Schema, t.Table)); err != nil {
				return nil, pgError(err, t)
			}
		}
	} else {
		var sb strings.Builder
		sb.WriteString("CREATE TABLE " + qualified(t.Schema, t.Table) + " (")
		for i, c := range t.Columns {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pgx.Identifier{c.Name}.Sanitize() + " " + c.Type)
			target[i] = c.Name
		}
		sb.WriteString(")")
		if _, err := tx.Exec(ctx, sb.String()); err != nil {
			return nil, pgError(err, t)
		}
	}
	cols := make([]string, len(target))
	for i, n := range target {
		cols[i] = pgx.Identifier{n}.Sanitize()
	}
	return cols, nil
}

// matchColumns maps the file's columns onto an existing table's columns:
// by name (exactly, else case-insensitively) when the file has names, by
// position when it has no header. Table columns the file lacks get their
// default (or NULL).
func (t *TablePlan) matchColumns(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname FROM pg_attribute a
		WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, t.Schema, t.Table)
	if err != nil {
		return nil, pgError(err, t)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, pgError(err, t)
	}
	out := make([]string, len(t.Columns))
	if !t.Header && !t.keyed {
		if len(t.Columns) > len(have) {
			return nil, &Error{Type: "column_mismatch", Message: fmt.Sprintf("the file has %d columns but table %s has %d: without a header row columns are matched by position", len(t.Columns), t.Table, len(have)),
				Details: map[string]any{"file_columns": len(t.Columns), "table_columns": len(have)}}
		}
		copy(out, have)
		return out, nil
	}
	exact := map[string]string{}
	lower := map[string][]string{}
	for _, h := range have {
		exact[h] = h
		lower[strings.ToLower(h)] = append(lower[strings.ToLower(h)], h)
	}
	used := map[string]bool{}
	for i, c := range t.Columns {
		name, ok := exact[c.Name]
		if !ok {
			if l := lower[strings.ToLower(c.Name)]; len(l) == 1 {
				name, ok = l[0], true
			}
		}
		if !ok || used[name] {
			return nil, &Error{Type: "column_mismatch", Message: fmt.Sprintf("column %q of the file has no matching column in table %s (it has %s): rename the column or import into a new table", c.Name, t.Table, strings.Join(have, ", ")),
				Details: map[string]any{"column": c.Name, "table_columns": have}}
		}
		used[name] = true
		out[i] = name
	}
	return out, nil
}

// copyEncoder writes rows as COPY CSV: NULL is an empty unquoted field, any
// value is quoted. A producer goroutine parses and encodes the file while
// PostgreSQL consumes the previous chunks, so that both run at once.
type copyEncoder struct {
	ctx      context.Context
	r        rowReader
	width    int
	skip     bool
	rows     int64
	err      error // set by the producer before it closes chunks
	progress func(Progress)

	chunks chan []byte
	free   chan []byte
	done   chan struct{} // closed by stop: the consumer is gone
	exited chan struct{}
	cur    []byte
	off    int
}

const chunkSize = 256 << 10

func (e *copyEncoder) start() {
	e.chunks = make(chan []byte, 4)
	e.free = make(chan []byte, 6)
	e.done = make(chan struct{})
	e.exited = make(chan struct{})
	go e.produce()
}

// stop ends the producer and waits for it.
func (e *copyEncoder) stop() {
	close(e.done)
	<-e.exited
}

func (e *copyEncoder) produce() {
	defer close(e.exited)
	defer close(e.chunks)
	for {
		var buf []byte
		select {
		case buf = <-e.free:
			buf = buf[:0]
		default:
			buf = make([]byte, 0, chunkSize+4096)
		}
		eof, err := e.fill(&buf)
		if err != nil {
			e.err = err
			return
		}
		if len(buf) > 0 {
			select {
			case e.chunks <- buf:
			case <-e.done:
				return
			}
		}
		if eof {
			return
		}
	}
}

func (e *copyEncoder) Read(p []byte) (int, error) {
	for e.off >= len(e.cur) {
		if e.cur != nil {
			select {
			case e.free <- e.cur:
			default:
			}
			e.cur = nil
		}
		select {
		case c, ok := <-e.chunks:
			if !ok {
				if e.err != nil {
					return 0, e.err
				}
				return 0, io.EOF
			}
			e.cur, e.off = c, 0
		case <-e.ctx.Done():
			return 0, e.ctx.Err()
		}
	}
	n := copy(p, e.cur[e.off:])
	e.off += n
	return n, nil
}

// fill encodes rows into *buf until it holds chunkSize bytes or the file ends.
func (e *copyEncoder) fill(bp *[]byte) (eof bool, err error) {
	b := *bp
	defer func() { *bp = b }()
	for len(b) < chunkSize {
		row, err := e.r.Next()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if e.skip {
			e.skip = false
			continue
		}
		e.rows++
		for i := 0; i < e.width; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if i >= len(row) {
				continue
			}
			c := row[i]
			switch c.Kind {
			case Null:
				continue
			case Bytes:
				b = append(b, `"\x`...)
				b = hex.AppendEncode(b, []byte(c.S))
				b = append(b, '"')
				continue
			}
			b = append(b, '"')
			s := c.S
			for {
				j := strings.IndexByte(s, '"')
				if j < 0 {
					break
				}
				b = append(b, s[:j+1]...)
				b = append(b, '"')
				s = s[j+1:]
			}
			b = append(b, s...)
			b = append(b, '"')
		}
		b = append(b, '\n')
		if e.rows&8191 == 0 {
			if err := e.ctx.Err(); err != nil {
				return false, err
			}
			if e.progress != nil {
				e.progress(Progress{BytesDone: e.r.BytesRead(), Rows: e.rows})
			}
		}
	}
	return false, nil
}

// copyWhere matches the context PostgreSQL gives a COPY data error.
var copyWhere = regexp.MustCompile(`COPY [^,]+, line (\d+)(?:, column ([^:]+))?(?:: "(.*)")?`)

// pgError turns a PostgreSQL error into an *Error a user can act on.
func pgError(err error, t *TablePlan) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	details := map[string]any{"sqlstate": pe.Code}
	if pe.Detail != "" {
		details["detail"] = pe.Detail
	}
	table := ""
	if t != nil {
		table = t.Table
		details["table"] = t.Table
	}
	if m := copyWhere.FindStringSubmatch(pe.Where); m != nil {
		row, _ := strconv.Atoi(m[1])
		details["row"] = row
		if m[2] != "" {
			details["column"] = m[2]
		}
		if m[3] != "" {
			details["value"] = m[3]
		}
	}
	where := ""
	if r, ok := details["row"]; ok {
		where = fmt.Sprintf(" (row %v", r)
		if c, ok := details["column"]; ok {
			where += fmt.Sprintf(", column %v", c)
		}
		if v, ok := details["value"]; ok {
			where += fmt.Sprintf(", value %q", v)
		}
		where += ")"
	}
	switch {
	case pe.Code == "42501":
		return &Error{Type: "permission_denied", Message: pe.Message + ": your role on this database cannot do this import (creating a table needs OWNER or ADMIN; appending needs WRITER)", Details: details}
	case pe.Code == "3F000":
		return &Error{Type: "schema_not_found", Message: pe.Message + ": create the schema first or use schema_name public", Details: details}
	case pe.Code == "42P07":
		return &Error{Type: "table_exists", Message: pe.Message + ": the table was created by someone else during the import; retry it", Details: details}
	case pe.Code == "54011":
		return &Error{Type: "too_many_columns", Message: pe.Message, Details: details}
	case strings.HasPrefix(pe.Code, "22"):
		return &Error{Type: "type_mismatch", Message: fmt.Sprintf("a value does not fit its column in table %s%s: %s", table, where, pe.Message), Details: details}
	case strings.HasPrefix(pe.Code, "23"):
		return &Error{Type: "constraint_violation", Message: fmt.Sprintf("a row breaks a constraint of table %s%s: %s", table, where, pe.Message), Details: details}
	}
	return &Error{Type: "sql_error", Message: pe.Message + where, Details: details}
}

// plainCSV is a CSV file that PostgreSQL's COPY parses itself (see
// CSVProfile.Plain).
type plainCSV struct {
	src   Source
	delim rune
}

// loadPlain streams the file as it is into COPY … (FORMAT csv), letting
// PostgreSQL parse it; COPY's line numbers are turned back into data rows.
func (t *TablePlan) loadPlain(ctx context.Context, tx pgx.Tx, cols []string, progress func(Progress)) (int64, error) {
	f, err := t.plain.src.Open(ctx)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	header := ""
	if t.Header {
		header = ", HEADER true"
	}
	sql := "COPY " + qualified(t.Schema, t.Table) + " (" + strings.Join(cols, ", ") + ") FROM STDIN WITH (FORMAT csv, DELIMITER '" +
		string(t.plain.delim) + "'" + header + ")"
	pr := &plainProgress{ctx: ctx, r: f, progress: progress, header: t.Header}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, pr, sql)
	if pr.err != nil {
		return pr.rows(), pr.err
	}
	if err != nil {
		err = pgError(err, t)
		var ie *Error
		if t.Header && errors.As(err, &ie) {
			if row, ok := ie.Details["row"].(int); ok && row > 1 {
				ie.Details["row"] = row - 1 // COPY counts the header line
				ie.Message = strings.Replace(ie.Message, fmt.Sprintf("(row %d", row), fmt.Sprintf("(row %d", row-1), 1)
			}
		}
		return pr.rows(), err
	}
	if progress != nil {
		progress(Progress{BytesDone: pr.n, Rows: tag.RowsAffected()})
	}
	return tag.RowsAffected(), nil
}

// plainProgress reads the file for COPY in large chunks, counting bytes and
// lines for progress reports.
type plainProgress struct {
	ctx      context.Context
	r        io.Reader
	progress func(Progress)
	header   bool
	n, lines int64
	reported int64
	err      error // a read error of the file (not of PostgreSQL)
}

func (p *plainProgress) rows() int64 {
	if p.header && p.lines > 0 {
		return p.lines - 1
	}
	return p.lines
}

func (p *plainProgress) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		p.err = err
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.lines += int64(bytes.Count(b[:n], []byte{'\n'}))
	if err != nil && err != io.EOF {
		p.err = err
	}
	if p.progress != nil && p.n-p.reported >= chunkSize*4 {
		p.reported = p.n
		p.progress(Progress{BytesDone: p.n, Rows: p.rows()})
	}
	return n, err
}
