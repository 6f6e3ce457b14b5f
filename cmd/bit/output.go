package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// Output formats.
const (
	fmtJSON   = "json"
	fmtTable  = "table"
	fmtCSV    = "csv"
	fmtNDJSON = "ndjson"
)

// tabular is a value laid out as columns and rows for --format table|csv.
type tabular struct {
	cols []string
	rows [][]any
}

// outputFormat returns the --format value, checked against allowed (the
// first allowed value is the default).
func (inv *invocation) outputFormat(allowed ...string) (string, error) {
	f := inv.opt("--format").str(allowed[0])
	if !contains(allowed, f) {
		return "", usagef(inv.cmd, "--format must be one of %s for %s, not %q", strings.Join(allowed, "|"), inv.cmd.fullName(), f)
	}
	return f, nil
}

// emit writes v as compact JSON, or its tabular form as a table or CSV,
// according to --format (json|table|csv).
func (inv *invocation) emit(v any, tab func() tabular) error {
	f, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV)
	if err != nil {
		return err
	}
	w := inv.app.out
	switch f {
	case fmtTable:
		t := tab()
		return writeTable(w, t.cols, t.rows)
	case fmtCSV:
		t := tab()
		return writeCSV(w, t.cols, t.rows)
	}
	return writeJSON(w, v)
}

// writeJSON writes v as one line of compact JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := jsonx.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// cellText renders one value for a table or CSV cell. null reports a SQL NULL
// (nil), which CSV writes as an empty unquoted field.
func cellText(v any) (s string, null bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, false
	case jsonx.Number:
		return string(x), false
	case bool:
		return strconv.FormatBool(x), false
	case int:
		return strconv.Itoa(x), false
	case int64:
		return strconv.FormatInt(x, 10), false
	case uint32:
		return strconv.FormatUint(uint64(x), 10), false
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), false
	case time.Time:
		return x.Format(time.RFC3339Nano), false
	case *time.Time:
		if x == nil {
			return "", true
		}
		return x.Format(time.RFC3339Nano), false
	}
	b, err := jsonx.Marshal(v)
	if err != nil {
		return fmt.Sprint(v), false
	}
	return string(b), false
}

// isNumeric reports whether v is right-aligned in a table.
func isNumeric(v any) bool {
	switch v.(type) {
	case jsonx.Number, int, int64, uint32, float64:
		return true
	}
	return false
}

var tableEscaper = strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`)

// writeTable writes aligned columns with a header and a rule, numbers
// right-aligned, NULL as an empty cell, and line breaks and tabs escaped so
// that every row stays on one line.
func writeTable(w io.Writer, cols []string, rows [][]any) error {
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = utf8.RuneCountInString(c)
	}
	cells := make([][]string, len(rows))
	for r, row := range rows {
		cells[r] = make([]string, len(cols))
		for i := range cols {
			var v any
			if i < len(row) {
				v = row[i]
			}
			s, _ := cellText(v)
			s = tableEscaper.Replace(s)
			cells[r][i] = s
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	line := func(parts []string, right func(i int) bool) {
		b.Reset()
		for i, s := range parts {
			if i > 0 {
				b.WriteString(" | ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
			if right(i) {
				b.WriteString(pad + s)
			} else if i == len(parts)-1 {
				b.WriteString(s)
			} else {
				b.WriteString(s + pad)
			}
		}
		b.WriteByte('\n')
	}
	left := func(int) bool { return false }
	line(cols, left)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	b.Reset()
	for i := range cols {
		if i > 0 {
			b.WriteString("-+-")
		}
		b.WriteString(strings.Repeat("-", width[i]))
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	for r := range cells {
		line(cells[r], func(i int) bool { return i < len(rows[r]) && isNumeric(rows[r][i]) })
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// writeCSV writes an RFC 4180 header and rows (CRLF line ends).
func writeCSV(w io.Writer, cols []string, rows [][]any) error {
	hdr := make([]any, len(cols))
	for i, c := range cols {
		hdr[i] = c
	}
	if err := writeCSVRecord(w, hdr); err != nil {
		return err
	}
	for _, r := range rows {
		if err := writeCSVRecord(w, r); err != nil {
			return err
		}
	}
	return nil
}

// writeCSVRecord writes one RFC 4180 record. A field is quoted when it holds
// a comma, quote, CR or LF, starts or ends with a space, or is an empty
// string; a NULL is an empty unquoted field (as PostgreSQL's COPY … CSV does),
// so the two stay distinguishable.
func writeCSVRecord(w io.Writer, rec []any) error {
	var b strings.Builder
	for i, v := range rec {
		if i > 0 {
			b.WriteByte(',')
		}
		s, null := cellText(v)
		switch {
		case null:
		case s == "" || strings.ContainsAny(s, ",\"\r\n") || s[0] == ' ' || s[len(s)-1] == ' ':
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(s, `"`, `""`))
			b.WriteByte('"')
		default:
			b.WriteString(s)
		}
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// newBufferedWriter buffers writes to a file or stdout in 64 KiB blocks.
func newBufferedWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }
