package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// runApp runs the CLI in-process with no environment and returns its
// stdout, stderr and exit status.
func runApp(t *testing.T, env map[string]string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return env[k] },
	}
	code := a.run(t.Context(), args)
	return out.String(), errb.String(), code
}

func TestHelpAndUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		code       int
		stdoutHas  string
		stderrHas  string
		emptyError bool
	}{
		{"root help", []string{"--help"}, 0, "Usage: bit COMMAND", "", true},
		{"short help", []string{"-h"}, 0, "Commands:", "", true},
		{"help command", []string{"help", "db", "create"}, 0, "Usage: bit db create -n NAME", "", true},
		{"group help", []string{"db", "--help"}, 0, "Usage: bit db COMMAND", "", true},
		{"leaf help", []string{"query", "-h"}, 0, `\N binds SQL NULL`, "", true},
		{"help after args", []string{"db", "create", "-n", "x", "--help"}, 0, "--storage-limit BYTES", "", true},
		{"help despite mistakes", []string{"query", "--bogus", "-h"}, 0, "Usage: bit query", "", true},
		{"sa key help", []string{"sa", "key", "create", "--help"}, 0, "Usage: bit sa key create ID", "", true},
		{"version", []string{"--version"}, 0, "bit ", "", true},
		{"no command", nil, 2, "", "missing command", false},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, false},
		{"unknown subcommand", []string{"db", "drop"}, 2, "", `unknown command "drop" for bit db`, false},
		{"missing subcommand", []string{"db"}, 2, "", "missing subcommand for bit db", false},
		{"unknown flag", []string{"db", "list", "--nope"}, 2, "", "unknown flag --nope", false},
		{"flag needs value", []string{"query", "-d"}, 2, "", "flag -d needs a value", false},
		{"missing sql", []string{"query", "-d", "a/b"}, 2, "", "missing SQL", false},
		{"sql twice", []string{"query", "-d", "a/b", "-q", "select 1", "-qf", "x.sql"}, 2, "", "SQL given more than once", false},
		{"missing db", []string{"query", "-q", "select 1"}, 2, "", "missing -d/--database", false},
		{"bad format", []string{"query", "-d", "a/b", "-q", "select 1", "--format", "xml"}, 2, "", "--format must be one of", false},
		{"ndjson not for db list", []string{"db", "list", "--format", "ndjson"}, 2, "", "--format must be one of json|table|csv", false},
		{"bad timeout", []string{"query", "-d", "a/b", "-q", "select 1", "--timeout", "soon"}, 2, "", "--timeout takes a positive duration", false},
		{"db create no name", []string{"db", "create"}, 2, "", "missing -n/--name", false},
		{"db create bad limit", []string{"db", "create", "-n", "x", "--storage-limit", "lots"}, 2, "", "--storage-limit takes a positive number", false},
		{"db update nothing", []string{"db", "update", "-d", "a/b"}, 2, "", "nothing to update", false},
		{"db update bad bool", []string{"db", "update", "-d", "a/b", "-p", "maybe"}, 2, "", "-p/--is_private/--is-private takes true or false", false},
		{"db update contradiction", []string{"db", "update", "-d", "a/b", "-p", "true", "--public", "true"}, 2, "", "contradict", false},
		{"db create two privacies", []string{"db", "create", "-n", "x", "-p", "--is_private", "true"}, 2, "", "only one of --public, -p and --is_private", false},
		{"key revoke both", []string{"key", "revoke", "v2_x", "--all"}, 2, "", "give one of KEY, --id ID and --all", false},
		{"key revoke nothing", []string{"key", "revoke"}, 2, "", "missing KEY", false},
		{"sa create bad role", []string{"sa", "create", "-n", "x", "--role", "god"}, 2, "", "--role must be", false},
		{"sa info no id", []string{"sa", "info"}, 2, "", "missing the service account ID", false},
		{"import no file", []string{"import", "-d", "a/b", "-t", "t"}, 2, "", "missing the FILE", false},
		{"import file and url", []string{"import", "-d", "a/b", "-t", "t", "f.csv", "--url", "http://x/"}, 2, "", "either FILE or --url", false},
		{"import bad header", []string{"import", "-d", "a/b", "-t", "t", "--header", "maybe", "f.csv"}, 2, "", "must be one of auto|first_row|no_header", false},
		{"export both", []string{"export", "-d", "a/b", "-q", "select 1", "-t", "x"}, 2, "", "either -q SQL or -t TABLE", false},
		{"export bad format", []string{"export", "-d", "a/b", "-t", "x", "--format", "table"}, 2, "", "must be one of csv|json|xls|parquet", false},
		{"too many args", []string{"db", "info", "a/b", "c/d"}, 2, "", `unexpected argument "c/d"`, false},
		{"connect bad addr", []string{"connect", "-d", "a/b", "--pg-addr", "nohostport"}, 2, "", "is not HOST:PORT", false},
		{"login without terminal", []string{"login"}, 2, "", "missing -u USER", false},
		{"login without password", []string{"login", "-u", "alice"}, 2, "", "no password", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runApp(t, nil, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdoutHas, stdout)
			}
			if !strings.Contains(stderr, tc.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrHas, stderr)
			}
			if tc.emptyError && stderr != "" {
				t.Errorf("stderr not empty: %s", stderr)
			}
			if code == 2 && !strings.Contains(stderr, "Usage: bit") {
				t.Errorf("a usage error prints no usage:\n%s", stderr)
			}
		})
	}
}

func TestNoCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, stderr, code := runApp(t, map[string]string{envCacheDir: dir, envEndpoint: "http://127.0.0.1:1"}, "", "db", "list")
	if code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, stderr)
	}
	if !strings.Contains(stderr, "no credentials") || !strings.Contains(stderr, "bit login") {
		t.Errorf("stderr = %q", stderr)
	}
}

func TestConnectionRefusedIsExit3(t *testing.T) {
	t.Parallel()
	env := map[string]string{envAPIKey: "v2_secretsecretsecret", envEndpoint: "http://127.0.0.1:1"}
	_, stderr, code := runApp(t, env, "", "db", "list")
	if code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, stderr)
	}
	if strings.Contains(stderr, "secretsecret") {
		t.Errorf("stderr shows the key: %s", stderr)
	}
}

func TestParseFlagsAnywhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		db   string
		sql  string
		p    []string
		pos  []string
	}{
		{"flags first", []string{"query", "-d", "a/b", "-q", "select 1"}, "a/b", "select 1", nil, nil},
		{"globals before command", []string{"-k", "K", "query", "-d=a/b", "--query=select 2"}, "a/b", "select 2", nil, nil},
		{"positional sql then flags", []string{"query", "select $1", "-p", "x", "-d", "a/b", "-p", "-5"}, "a/b", "", []string{"x", "-5"}, []string{"select $1"}},
		{"dash dash", []string{"query", "-d", "a/b", "--", "-- comment\nselect 1"}, "a/b", "", nil, []string{"-- comment\nselect 1"}},
		{"value starting with dash", []string{"query", "-d", "a/b", "-q", "-- c\nselect 1"}, "a/b", "-- c\nselect 1", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv, err := parse(commands(), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if inv.cmd.fullName() != "bit query" {
				t.Fatalf("command %q", inv.cmd.fullName())
			}
			if got := inv.str("-d"); got != tc.db {
				t.Errorf("-d = %q, want %q", got, tc.db)
			}
			if got := inv.str("-q"); got != tc.sql {
				t.Errorf("-q = %q, want %q", got, tc.sql)
			}
			if got := inv.opt("-p").vals; strings.Join(got, "|") != strings.Join(tc.p, "|") {
				t.Errorf("-p = %q, want %q", got, tc.p)
			}
			if strings.Join(inv.args, "|") != strings.Join(tc.pos, "|") {
				t.Errorf("args = %q, want %q", inv.args, tc.pos)
			}
		})
	}
}

func TestPythonBitdotioSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		private bool
	}{
		{"default private", []string{"db", "create", "-n", "x"}, true},
		{"bare -p is public", []string{"db", "create", "-n", "x", "-p"}, false},
		{"bare -p before name", []string{"db", "create", "-p", "-n", "x"}, false},
		{"--public", []string{"db", "create", "x", "--public"}, false},
		{"python -p false", []string{"db", "create", "-n", "x", "-p", "false"}, false},
		{"python -p True", []string{"db", "create", "-n", "x", "-p", "True"}, true},
		{"python --is_private False", []string{"db", "create", "-n", "x", "--is_private", "False"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv, err := parse(commands(), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			got, err := createPrivacy(inv)
			if err != nil || got != tc.private {
				t.Errorf("private = %v, %v; want %v", got, err, tc.private)
			}
		})
	}
	t.Run("query -o alone is --objects", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"query", "-d", "a/b", "-o", "-q", "select 1"},
			{"query", "-d", "a/b", "-q", "select 1", "-o"},
		} {
			inv, err := parse(commands(), args)
			if err != nil {
				t.Fatal(err)
			}
			if o := inv.opt("-o"); !o.set || o.str("x") != "" || inv.str("-q") != "select 1" {
				t.Errorf("%q: -o %v %q, -q %q", args, o.set, o.vals, inv.str("-q"))
			}
		}
		inv, err := parse(commands(), []string{"query", "-d", "a/b", "-q", "select 1", "-o", "out.json", "--query_file", "f"})
		if err != nil {
			t.Fatal(err)
		}
		if inv.str("-o") != "out.json" || inv.str("-qf") != "f" {
			t.Errorf("-o %q -qf %q", inv.str("-o"), inv.str("-qf"))
		}
	})
}

func TestGlobalFormatBeforeCommandCarriesOver(t *testing.T) {
	t.Parallel()
	inv, err := parse(commands(), []string{"--format", "ndjson", "query", "-d", "a/b", "-q", "select 1"})
	if err != nil {
		t.Fatal(err)
	}
	inv.app = &app{}
	f, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV, fmtNDJSON)
	if err != nil || f != fmtNDJSON {
		t.Fatalf("format %q, %v", f, err)
	}
}

func TestPsqlPassthrough(t *testing.T) {
	t.Parallel()
	inv, err := parse(commands(), []string{"psql", "-d", "a/b", "--", "-c", "select 1", "-X"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(inv.passthrough, " ") != "-c select 1 -X" || len(inv.args) != 0 {
		t.Fatalf("passthrough %q args %q", inv.passthrough, inv.args)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	var walk func(c *command)
	walk = func(c *command) {
		if c.summary == "" {
			t.Errorf("%s has no summary", c.fullName())
		}
		if len(c.subs) == 0 && c.run == nil {
			t.Errorf("%s has no run", c.fullName())
		}
		for _, s := range c.subs {
			walk(s)
		}
	}
	walk(commands())
}

func TestTableAndCSV(t *testing.T) {
	t.Parallel()
	cols := []string{"id", "name", "note"}
	rows := [][]any{
		{jsonx.Number("1"), "alice", nil},
		{jsonx.Number("12345678901234567890"), "bob, jr", "line1\nline2"},
		{jsonx.Number("-3"), `say "hi"`, ""},
		{jsonx.Number("4"), []any{jsonx.Number("1"), "x"}, map[string]any{"k": true}},
	}
	var tb bytes.Buffer
	if err := writeTable(&tb, cols, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(tb.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("table has %d lines:\n%s", len(lines), tb.String())
	}
	if lines[0] != "id                   | name     | note" {
		t.Errorf("header %q", lines[0])
	}
	if lines[1] != "---------------------+----------+-------------" {
		t.Errorf("rule %q", lines[1])
	}
	if lines[2] != "                   1 | alice    | " {
		t.Errorf("row 1 %q", lines[2])
	}
	if lines[3] != "12345678901234567890 | bob, jr  | line1\\nline2" {
		t.Errorf("row 2 %q", lines[3])
	}
	if lines[5] != "                   4 | [1,\"x\"]  | {\"k\":true}" {
		t.Errorf("row 4 %q", lines[5])
	}

	var cb bytes.Buffer
	if err := writeCSV(&cb, cols, rows); err != nil {
		t.Fatal(err)
	}
	wantCSV := "id,name,note\r\n" +
		"1,alice,\r\n" +
		"12345678901234567890,\"bob, jr\",\"line1\nline2\"\r\n" +
		"-3,\"say \"\"hi\"\"\",\"\"\r\n" +
		"4,\"[1,\"\"x\"\"]\",\"{\"\"k\"\":true}\"\r\n"
	if cb.String() != wantCSV {
		t.Errorf("csv:\n%q\nwant\n%q", cb.String(), wantCSV)
	}
}

func TestResultJSONKeepsOrderAndDigits(t *testing.T) {
	t.Parallel()
	res := &core.Result{
		Query:    "select",
		Columns:  []core.Column{{Name: "z", Type: "int8"}, {Name: "a", Type: "numeric"}, {Name: "z", Type: "text"}},
		Metadata: map[string]string{"z": "text", "a": "numeric"},
		Rows:     [][]any{{jsonx.Number("9223372036854775807"), jsonx.Number("1234567890123456789012345678901234567890.5"), "last"}},
		RowCount: 1,
		Command:  "SELECT 1",
	}
	b, err := jsonx.Marshal(resultJSON(res, true))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"query_string":"select","metadata":{"a":"numeric","z":"text"},"data":[{"z":"last","a":1234567890123456789012345678901234567890.5}],"columns":[{"name":"z","type":"int8","type_oid":0},{"name":"a","type":"numeric","type_oid":0},{"name":"z","type":"text","type_oid":0}],"row_count":1,"command":"SELECT 1"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, err = jsonx.Marshal(resultJSON(res, false))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"data":[[9223372036854775807,1234567890123456789012345678901234567890.5,"last"]]`) {
		t.Errorf("rows: %s", b)
	}
}

func TestConnInfoURI(t *testing.T) {
	t.Parallel()
	ci := connInfo{Host: "db.example.com", Port: "5432", Database: "alice/my-db", User: "alice", SSLMode: "require"}
	if got, want := ci.uri("REDACTED"), "postgresql://alice:REDACTED@db.example.com:5432/alice%2Fmy-db?sslmode=require"; got != want {
		t.Errorf("uri = %q, want %q", got, want)
	}
	if got, want := ci.uri("v2_a/b@c"), "postgresql://alice:v2_a%2Fb%40c@db.example.com:5432/alice%2Fmy-db?sslmode=require"; got != want {
		t.Errorf("uri = %q, want %q", got, want)
	}
	if got, want := ci.uri(""), "postgresql://alice@db.example.com:5432/alice%2Fmy-db?sslmode=require"; got != want {
		t.Errorf("uri = %q, want %q", got, want)
	}
}

func TestConnectAddressPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		host string
		port string
	}{
		{"derived", nil, map[string]string{envEndpoint: "https://api.example.com:8443"}, "api.example.com", "5432"},
		{"env", nil, map[string]string{envPGAddr: "10.0.0.1:6432"}, "10.0.0.1", "6432"},
		{"flag wins", []string{"--pg-addr", "[::1]:7000"}, map[string]string{envPGAddr: "10.0.0.1:6432"}, "::1", "7000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv, err := parse(commands(), append([]string{"connect", "-d", "a/b"}, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			inv.app = &app{getenv: func(k string) string { return tc.env[k] }}
			h, p, err := inv.pgAddr()
			if err != nil || h != tc.host || p != tc.port {
				t.Errorf("pgAddr = %q %q %v, want %q %q", h, p, err, tc.host, tc.port)
			}
		})
	}
}

func TestWriteFileAtomicKeepsOldOnFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "out.csv")
	if err := os.WriteFile(name, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := writeFileAtomic(name, func(w io.Writer) error {
		_, _ = w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(name); string(b) != "old" {
		t.Errorf("file = %q, want old", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if err := writeFileAtomic(name, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(name); string(b) != "new" {
		t.Errorf("file = %q, want new", b)
	}
}

func TestRenderProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phase, state      string
		frac              float64
		done, total, rows int64
		elapsed           time.Duration
		want              string
	}{
		{"upload", "UPLOADING", 0.25, 512, 1024, 0, 300 * time.Millisecond,
			"import [######------------------]  25%  upload 512 B/1.0 KiB  UPLOADING  0.3 s"},
		{"", "PROCESSING", 0.5, 0, 0, 42, time.Second, "import [############------------]  50%  42 rows  PROCESSING  1.0 s"},
		{"processing", "DONE", 1, 3 << 20, 3 << 20, 200_000, 61 * time.Second,
			"import [########################] 100%  processing 3.0 MiB/3.0 MiB  200,000 rows  DONE  1m1s"},
	}
	for _, tc := range tests {
		if got := renderProgress("import", tc.phase, tc.state, tc.frac, tc.done, tc.total, tc.rows, tc.elapsed, 0); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	// On a narrow terminal the line fits: the bytes go first, then the time,
	// the rows and the state.
	for width, want := range map[int]string{
		200: "import [########################] 100%  processing 3.0 MiB/3.0 MiB  200,000 rows  DONE  1.0 s",
		80:  "import [########################] 100%  200,000 rows  DONE  1.0 s",
		60:  "import [########################] 100%  200,000 rows  DONE",
		50:  "import [########################] 100%  DONE",
		20:  "import [########################] 100%",
	} {
		got := renderProgress("import", "processing", "DONE", 1, 3<<20, 3<<20, 200_000, time.Second, width)
		if got != want {
			t.Errorf("width %d: got %q, want %q", width, got, want)
		}
	}
}

func TestProgressQuietWithoutTerminal(t *testing.T) {
	t.Parallel()
	var errb bytes.Buffer
	p := newProgressBar(&app{stderr: &errb}, "import", "upload", "processing")
	p.update(1, "PROCESSING", 1, 2, 3)
	p.complete("DONE")
	p.finish()
	if errb.Len() != 0 {
		t.Errorf("progress drawn without a terminal: %q", errb.String())
	}
}

func TestSessionsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if u, err := loadSession(dir, "http://a"); err != nil || u != "" {
		t.Fatalf("empty: %q %v", u, err)
	}
	if err := saveSession(dir, "http://a", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := saveSession(dir, "http://b", "bob"); err != nil {
		t.Fatal(err)
	}
	if u, _ := loadSession(dir, "http://a"); u != "alice" {
		t.Errorf("a: %q", u)
	}
	if err := saveSession(dir, "http://a", ""); err != nil {
		t.Fatal(err)
	}
	if u, _ := loadSession(dir, "http://a"); u != "" {
		t.Errorf("a after logout: %q", u)
	}
	if u, _ := loadSession(dir, "http://b"); u != "bob" {
		t.Errorf("b: %q", u)
	}
	st, err := os.Stat(filepath.Join(dir, sessionsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v %v", st.Mode(), err)
	}
}

func TestDescribeError(t *testing.T) {
	t.Parallel()
	idx := 1
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"sql error", fmt.Errorf("wrapped: %w", &core.APIError{StatusCode: 400, Code: "sql_error", Message: `column "x" does not exist`,
			SQLState: "42703", Position: 8, Hint: "Perhaps you meant y.", Detail: "d", RequestID: "r1", Index: &idx}),
			"bit: error: column \"x\" does not exist\n  status: 400 (code sql_error)\n  sqlstate: 42703\n  statement: 1\n  position: 8\n  detail: d\n  hint: Perhaps you meant y.\n  request id: r1\n"},
		{"job failed", &core.JobFailedError{Job: &core.Job{ID: "j1", State: "FAILED", ErrorType: "bad_file", ErrorID: "e1",
			ErrorDetails: map[string]any{"line": jsonx.Number("3")}}},
			"bit: error: job j1 failed: bad_file\n  details: {\"line\":3}\n  error id: e1\n"},
		{"plain", errors.New("boom"), "bit: error: boom\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := describeError(tc.err); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestProgressDrawsOnTerminal(t *testing.T) {
	t.Parallel()
	var errb bytes.Buffer
	p := newProgressBar(&app{stderr: &errb, stderrTTY: true}, "export")
	p.minStep = time.Hour
	p.update(0, "PROCESSING", -1, -1, 5)
	p.update(0, "DONE", -1, -1, 9) // within minStep of the first: not drawn
	p.finish()                     // draws the last state and keeps it
	p.finish()                     // a second call does nothing
	draws := strings.Split(errb.String(), "\r\033[K")
	if len(draws) != 3 || draws[0] != "" || !strings.HasPrefix(draws[1], "export [") || !strings.Contains(draws[1], "5 rows  PROCESSING") ||
		!strings.Contains(draws[2], "9 rows  DONE") || !strings.HasSuffix(draws[2], "\n") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("drawn %q", errb.String())
	}
}
