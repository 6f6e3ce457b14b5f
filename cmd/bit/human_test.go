package main

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
)

func TestCaret(t *testing.T) {
	t.Parallel()
	long := "select " + strings.Repeat("a, ", 40) + "nosuch, " + strings.Repeat("b, ", 40) + "1"
	tests := []struct {
		name string
		sql  string
		pos  int
		want string
	}{
		{"first line", "select nosuchcolumn from people", 8,
			"  LINE 1: select nosuchcolumn from people\n" +
				"                 ^\n"},
		{"third line, tab", "select 1;\nselect 2;\n\tselect x from t", 29,
			"  LINE 3:  select x from t\n" +
				"                  ^\n"},
		{"multibyte before", "select 'é', nope", 13,
			"  LINE 1: select 'é', nope\n" +
				"                      ^\n"},
		{"end of text", "select", 7, "  LINE 1: select\n                ^\n"},
		{"outside", "select 1", 42, ""},
		{"zero", "select 1", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := caret(tc.sql, tc.pos); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	t.Run("long line is cut around the position", func(t *testing.T) {
		t.Parallel()
		pos := strings.Index(long, "nosuch") + 1
		got := caret(long, pos)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "  LINE 1: ...") || !strings.HasSuffix(lines[0], "...") {
			t.Fatalf("got\n%s", got)
		}
		at := strings.Index(lines[1], "^")
		if at < 0 || !strings.HasPrefix(lines[0][at:], "nosuch") {
			t.Errorf("the caret is not under the position:\n%s", got)
		}
		if n := len([]rune(lines[0])) - len("  LINE 1: ") - 6; n != caretWidth {
			t.Errorf("shown %d characters, want %d", n, caretWidth)
		}
	})
}

func TestDidYouMean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"qurey"}, `unknown command "qurey" for bit: did you mean "query"?`},
		{[]string{"imprt"}, `did you mean "import"?`},
		{[]string{"db", "lsit"}, `unknown command "lsit" for bit db: did you mean "list"?`},
		{[]string{"db", "drop"}, `unknown command "drop" for bit db: did you mean "delete"?`},
		{[]string{"db", "rm"}, `did you mean "delete"?`},
		{[]string{"key", "ls"}, `did you mean "list"?`},
		{[]string{"exp"}, `did you mean "export"?`},
		{[]string{"help", "qeury"}, `did you mean "query"?`},
		{[]string{"query", "--databse", "x"}, `unknown flag --databse for bit query: did you mean "--database"?`},
		{[]string{"db", "delete", "--yse"}, `did you mean "--yes"?`},
	}
	for _, tc := range tests {
		_, stderr, code := runApp(t, nil, "", tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("bit %q: exit %d, stderr lacks %q:\n%s", tc.args, code, tc.want, stderr)
		}
	}
	for _, far := range []string{"frobnicate", "xyz"} {
		_, stderr, _ := runApp(t, nil, "", far)
		if strings.Contains(stderr, "did you mean") {
			t.Errorf("bit %s suggests something:\n%s", far, stderr)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "abc", 3}, {"query", "query", 0}, {"qurey", "query", 1}, {"lsit", "list", 1}, {"kitten", "sitting", 3}, {"é", "e", 1}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestGroupDigits(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 200000: "200,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestProgressIsContinuous checks that one bar spans the phases: the upload
// fills the first half, processing the second, and the bar never goes back
// when the server's figures start again from zero.
func TestProgressIsContinuous(t *testing.T) {
	t.Parallel()
	var errb bytes.Buffer
	p := newProgressBar(&app{stderr: &errb, stderrTTY: true}, "import", "upload", "processing")
	p.minStep = 0
	var fracs []float64
	step := func(phase int, state string, done, total int64) {
		p.update(phase, state, done, total, -1)
		p.mu.Lock()
		fracs = append(fracs, p.frac)
		p.mu.Unlock()
	}
	step(0, "UPLOADING", 0, 1000)
	step(0, "UPLOADING", 500, 1000)
	step(0, "UPLOADING", 1000, 1000)
	step(1, "QUEUED", -1, -1)
	step(1, "PROCESSING", 0, 1000)
	step(1, "PROCESSING", 500, 1000)
	step(0, "UPLOADING", 10, 1000) // a late upload figure is ignored
	step(1, "PROCESSING", 1000, 1000)
	want := []float64{0, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 1}
	for i := range want {
		if fracs[i] != want[i] {
			t.Fatalf("fractions %v, want %v", fracs, want)
		}
	}
	p.complete("DONE")
	p.finish()
	out := errb.String()
	last := out[strings.LastIndex(out, "\r\033[K"):]
	if !strings.Contains(last, "100%") || !strings.Contains(last, "DONE") || !strings.HasSuffix(last, "\n") {
		t.Errorf("the last drawing is %q", last)
	}
	if strings.Contains(out, "UPLOADING 10") || strings.Count(out, "\n") != 1 {
		t.Errorf("drawn:\n%q", out)
	}
}

// TestDeleteConfirmation drives db delete in-process with stdin as a
// terminal: no answer or "n" deletes nothing and never reaches the server;
// "y" and --yes go on (to a server that is not there: connection refused);
// without a terminal nothing is asked.
func TestDeleteConfirmation(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_API_KEY": "v2_" + strings.Repeat("k", 43)}
	run := func(tty bool, stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, stdinTTY: tty}
		code := a.run(t.Context(), append([]string{"db", "delete", "-d", "acct/doomed"}, args...))
		return out.String(), errb.String(), code
	}
	const question = "Delete the database acct/doomed and all its data?"
	for _, answer := range []string{"", "\n", "n\n", "no\n", "yep\n"} {
		out, stderr, code := run(true, answer)
		if code != exitError || out != "" || !strings.Contains(stderr, question) || !strings.Contains(stderr, "acct/doomed was not deleted") ||
			strings.Contains(stderr, "connection refused") {
			t.Errorf("answer %q: exit %d\nstdout %q\nstderr %s", answer, code, out, stderr)
		}
	}
	for _, tc := range []struct {
		tty   bool
		stdin string
		args  []string
		asked bool
	}{{true, "y\n", nil, true}, {true, "YES\n", nil, true}, {true, "", []string{"--yes"}, false}, {true, "", []string{"-y"}, false}, {false, "", nil, false}} {
		_, stderr, code := run(tc.tty, tc.stdin, tc.args...)
		if code != exitError || !strings.Contains(stderr, "connection refused") || strings.Contains(stderr, question) != tc.asked {
			t.Errorf("tty %v, stdin %q, %q: exit %d\n%s", tc.tty, tc.stdin, tc.args, code, stderr)
		}
	}
}

func TestBuildInfoVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}, "devel-0123456789ab-dirty"},
		{debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, "devel-abc"},
	}
	for _, tc := range tests {
		if got := buildInfoVersion(&tc.bi); got != tc.want {
			t.Errorf("buildInfoVersion(%+v) = %q, want %q", tc.bi, got, tc.want)
		}
	}
}

func TestDescribeSQLErrorCaret(t *testing.T) {
	t.Parallel()
	sql := "select 1;\nselect nope from t"
	err := withSQL(sql, fmt.Errorf("query: %w", &core.APIError{StatusCode: 400, Code: "sql_error", Message: `column "nope" does not exist`,
		SQLState: "42703", Position: 18}))
	want := "bit: error: column \"nope\" does not exist\n" +
		"  LINE 2: select nope from t\n" +
		"                 ^\n" +
		"  status: 400 (code sql_error)\n  sqlstate: 42703\n  position: 18\n"
	if got := describeError(err); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if withSQL(sql, nil) != nil {
		t.Error("withSQL(sql, nil) is not nil")
	}
}
