package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// describeError renders err for stderr: the server's message first, then its
// code, HTTP status, SQLSTATE, detail, hint and request ID on their own lines.
// It never includes credentials: core's errors carry none, and the CLI's own
// errors never quote a key, token or password.
func describeError(err error) string {
	var b strings.Builder
	var apiErr *core.APIError
	var jobErr *core.JobFailedError
	switch {
	case errors.As(err, &jobErr) && jobErr.Job != nil:
		j := jobErr.Job
		fmt.Fprintf(&b, "bit: error: job %s failed", j.ID)
		if j.ErrorType != "" {
			fmt.Fprintf(&b, ": %s", j.ErrorType)
		}
		b.WriteByte('\n')
		if len(j.ErrorDetails) > 0 {
			if d, err := jsonx.Marshal(j.ErrorDetails); err == nil {
				fmt.Fprintf(&b, "  details: %s\n", d)
			}
		}
		if j.ErrorID != "" {
			fmt.Fprintf(&b, "  error id: %s\n", j.ErrorID)
		}
	case errors.As(err, &apiErr):
		msg := apiErr.Message
		if msg == "" {
			msg = err.Error()
		}
		fmt.Fprintf(&b, "bit: error: %s\n", msg)
		var se *sqlError
		if apiErr.Position > 0 && errors.As(err, &se) {
			b.WriteString(caret(se.sql, apiErr.Position)) // psql's LINE n: with a caret
		}
		status := fmt.Sprintf("  status: %d", apiErr.StatusCode)
		if apiErr.Code != "" {
			status += fmt.Sprintf(" (code %s)", apiErr.Code)
		}
		b.WriteString(status + "\n")
		if apiErr.SQLState != "" {
			fmt.Fprintf(&b, "  sqlstate: %s\n", apiErr.SQLState)
		}
		if apiErr.Index != nil {
			fmt.Fprintf(&b, "  statement: %d\n", *apiErr.Index)
		}
		if apiErr.Position > 0 {
			fmt.Fprintf(&b, "  position: %d\n", apiErr.Position)
		}
		if apiErr.Detail != "" {
			fmt.Fprintf(&b, "  detail: %s\n", apiErr.Detail)
		}
		if apiErr.Hint != "" {
			fmt.Fprintf(&b, "  hint: %s\n", apiErr.Hint)
		}
		if errors.Is(err, core.ErrTooLarge) {
			b.WriteString("  with bit: stream the rows with --format ndjson or --format csv, or run `bit export`\n")
		}
		if apiErr.RequestID != "" {
			fmt.Fprintf(&b, "  request id: %s\n", apiErr.RequestID)
		}
	default:
		fmt.Fprintf(&b, "bit: error: %s\n", err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			b.WriteString("  hint: is bitd running there? Start one with `make demo` (or `bitd dev`), or point --endpoint / $BITKIT_ENDPOINT at your server\n")
		}
	}
	return b.String()
}

// sqlError carries the SQL text that err is about, so that describeError can
// point at the error's position in it.
type sqlError struct {
	sql string
	err error
}

func (e *sqlError) Error() string { return e.err.Error() }
func (e *sqlError) Unwrap() error { return e.err }

// withSQL attaches sql to a non-nil err.
func withSQL(sql string, err error) error {
	if err == nil {
		return nil
	}
	return &sqlError{sql: sql, err: err}
}

// caretWidth is how many characters of a long line caret shows around the
// position.
const caretWidth = 72

// caret renders the line of sql holding pos (PostgreSQL's 1-based character
// position) with a caret under it, as psql does (each line indented by two
// spaces under bit's error line):
//
//	LINE 1: select nosuchcolumn from people
//	               ^
//
// A long line is cut to caretWidth characters around the position, with
// "..." where it was cut. It returns "" when pos is outside sql.
func caret(sql string, pos int) string {
	r := []rune(sql)
	idx := pos - 1
	if idx < 0 || idx > len(r) {
		return ""
	}
	start, line := 0, 1
	for i := 0; i < idx; i++ {
		if r[i] == '\n' {
			start, line = i+1, line+1
		}
	}
	end := start
	for end < len(r) && r[end] != '\n' {
		end++
	}
	text := []rune(strings.TrimRight(string(r[start:end]), "\r"))
	col := idx - start
	for i, c := range text {
		if c == '\t' || c < ' ' {
			text[i] = ' ' // one column each, so the caret stays aligned
		}
	}
	var pre, post string
	if len(text) > caretWidth {
		from := max(0, min(col-caretWidth/2, len(text)-caretWidth))
		to := min(len(text), from+caretWidth)
		if from > 0 {
			pre = "..."
		}
		if to < len(text) {
			post = "..."
		}
		text = text[from:to]
		col -= from
	}
	prefix := fmt.Sprintf("  LINE %d: %s", line, pre)
	return prefix + string(text) + post + "\n" + strings.Repeat(" ", utf8.RuneCountInString(prefix)+col) + "^\n"
}
