package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// ptyStep answers a prompt: once the output holds waitFor, send is typed.
type ptyStep struct{ waitFor, send string }

// runPTY runs bit with stdin, stdout and stderr on one pseudo-terminal, as a
// person at a terminal would, typing the steps' answers when their prompts
// appear. It returns everything the terminal showed (line ends as "\r\n")
// and the exit status.
func (b *bitCLI) runPTY(t *testing.T, steps []ptyStep, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), b.bin, args...)
	cmd.Env = append(append([]string{}, b.env...), "TERM=xterm")
	cmd.Dir = b.dir
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatalf("start bit on a pty: %v", err)
	}
	defer tty.Close()
	var (
		mu   sync.Mutex
		out  bytes.Buffer
		read = make(chan struct{})
	)
	go func() {
		defer close(read)
		buf := make([]byte, 32<<10)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return // EIO once bit exited and the output is drained
			}
		}
	}()
	shown := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	for _, st := range steps {
		testwait.Eventually(t, time.Minute, func() error {
			if s := shown(); !strings.Contains(s, st.waitFor) {
				return fmt.Errorf("bit %q never showed %q; the terminal shows:\n%s", args, st.waitFor, s)
			}
			return nil
		})
		if _, err := io.WriteString(tty, st.send); err != nil {
			t.Fatalf("type %q: %v", st.send, err)
		}
	}
	err = cmd.Wait()
	<-read
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bit %q: %v", args, err)
	}
	return shown(), code
}

var percentRE = regexp.MustCompile(`\] +(\d+)%`)

// checkBar checks the progress bar on a terminal's output: drawn, never
// going back, full at the end, and left on screen (its last drawing ends
// with a line end, before the summary).
func checkBar(t *testing.T, out, label string) {
	t.Helper()
	draws := strings.Split(out, "\r\033[K")
	if len(draws) < 2 {
		t.Fatalf("no progress bar drawn:\n%q", out)
	}
	last := -1
	for _, m := range percentRE.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[1])
		if p < last {
			t.Errorf("the bar went back from %d%% to %d%%:\n%q", last, p, out)
		}
		last = p
	}
	final := draws[len(draws)-1]
	if !strings.HasPrefix(final, label+" [########################] 100%") || !strings.Contains(final, "DONE") {
		t.Errorf("the bar's last state is not full and DONE: %q", final)
	}
	if !strings.Contains(final, "\r\n") {
		t.Errorf("the bar was not left on screen: %q", final)
	}
}

// TestTerminal drives the CLI on a pseudo-terminal: the progress bar across
// upload and processing, the one-line summaries of import and export (and
// JSON with --json), the confirmation of db delete, and the psql-style caret
// under a SQL error.
func TestTerminal(t *testing.T) {
	s := bitdtest.Start(t)
	b := newBitCLI(t, s)
	key := "-k=" + s.APIKey
	db := bitdtest.UniqueName("tty")
	full := s.User + "/" + db
	b.ok(t, key, "db", "create", db)

	dir := t.TempDir()
	src := filepath.Join(dir, "big.csv")
	var csv bytes.Buffer
	csv.WriteString("id,label\n")
	for i := 1; i <= 200_000; i++ {
		fmt.Fprintf(&csv, "%d,row number %d\n", i, i)
	}
	if err := os.WriteFile(src, csv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("import", func(t *testing.T) {
		out, code := b.runPTY(t, nil, key, "import", "-d", db, "-t", "big", src)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		t.Logf("the terminal showed:\n%q", out)
		checkBar(t, out, "import")
		if !strings.Contains(out, "  upload ") {
			t.Errorf("the bar never showed the upload:\n%q", out)
		}
		summary := regexp.MustCompile(`✓ imported 200,000 rows into ` + regexp.QuoteMeta(full) + `\.big in \d+(\.\d s|m\d+s)\r\n$`)
		if !summary.MatchString(out) {
			t.Errorf("no summary line at the end:\n%q", out)
		}
		if strings.Contains(out, `"state"`) {
			t.Errorf("JSON printed on a terminal:\n%s", out)
		}
		if got := b.ok(t, key, "query", "-d", db, "-q", "select count(*), max(id) from big", "--format", "ndjson"); got != "[200000,200000]\n" {
			t.Errorf("rows imported: %q", got)
		}
	})

	t.Run("import --json", func(t *testing.T) {
		small := filepath.Join(dir, "small.csv")
		if err := os.WriteFile(small, []byte("a\n1\n2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := b.runPTY(t, nil, key, "import", "-d", db, "-t", "small", small, "--json")
		if code != 0 || strings.Contains(out, "✓") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		checkBar(t, out, "import")
		job := decode(t, out[strings.Index(out, "{"):])
		if job["state"] != "DONE" || job["progress"].(map[string]any)["rows"] != jsonx.Number("2") {
			t.Errorf("job: %v", job)
		}
	})

	t.Run("export", func(t *testing.T) {
		dst := filepath.Join(dir, "out.csv")
		out, code := b.runPTY(t, nil, key, "export", "-d", db, "-q", "select * from big order by id", "-o", dst)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		t.Logf("the terminal showed:\n%q", out)
		checkBar(t, out, "export")
		summary := regexp.MustCompile(`✓ exported 200,000 rows from ` + regexp.QuoteMeta(full) + ` to ` + regexp.QuoteMeta(dst) + ` \(\d+\.\d MiB\) in \d+(\.\d s|m\d+s)\r\n$`)
		if !summary.MatchString(out) {
			t.Errorf("no summary line at the end:\n%q", out)
		}
		data, err := os.ReadFile(dst)
		if err != nil || bytes.Count(data, []byte("\n")) != 200_001 || !bytes.Contains(data, []byte("200000,row number 200000")) {
			t.Errorf("exported file: %d bytes, %v", len(data), err)
		}
	})

	t.Run("failed import", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.csv")
		if err := os.WriteFile(bad, []byte("a,b\n1,2\n3\n\"unterminated\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := b.runPTY(t, nil, key, "import", "-d", db, "-t", "big", bad)
		t.Logf("the terminal showed:\n%q", out)
		if code != 3 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "bit: error: job ") || strings.Contains(out, "✓") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})

	t.Run("delete asks", func(t *testing.T) {
		victim := bitdtest.UniqueName("del")
		b.ok(t, key, "db", "create", victim)
		const q = "and all its data? This cannot be undone. [y/N] "
		out, code := b.runPTY(t, []ptyStep{{q, "n\r"}}, key, "db", "delete", victim)
		if code != 3 || !strings.Contains(out, "was not deleted") {
			t.Errorf("answer n: exit %d\n%s", code, out)
		}
		if r := b.run(t, "", key, "db", "info", victim); r.code != 0 {
			t.Fatalf("the database is gone after answering n: %s", r.stderr)
		}
		out, code = b.runPTY(t, []ptyStep{{q, "\x03"}}, key, "db", "delete", victim) // Ctrl-C
		if code != 3 || !strings.Contains(out, "bit: interrupted") {
			t.Errorf("Ctrl-C: exit %d\n%s", code, out)
		}
		if r := b.run(t, "", key, "db", "info", victim); r.code != 0 {
			t.Fatalf("the database is gone after Ctrl-C: %s", r.stderr)
		}
		out, code = b.runPTY(t, []ptyStep{{q, "y\r"}}, key, "db", "delete", victim)
		if code != 0 || !strings.Contains(out, `"deleted":"`+s.User+"/"+victim+`"`) {
			t.Errorf("answer y: exit %d\n%s", code, out)
		}
		if r := b.run(t, "", key, "db", "info", victim); r.code != 3 {
			t.Errorf("the database is still there after answering y: exit %d", r.code)
		}
		again := bitdtest.UniqueName("del")
		b.ok(t, key, "db", "create", again)
		out, code = b.runPTY(t, nil, key, "db", "delete", again, "--yes")
		if code != 0 || strings.Contains(out, "[y/N]") {
			t.Errorf("--yes: exit %d\n%s", code, out)
		}
	})

	t.Run("sql error caret", func(t *testing.T) {
		r := b.run(t, "", key, "query", "-d", db, "-q", "select 1;\nselect id, nosuchcolumn from big")
		want := "  LINE 2: select id, nosuchcolumn from big\n" +
			"                     ^\n"
		if r.code != 3 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "42703") {
			t.Errorf("exit %d, stderr lacks\n%s\ngot\n%s", r.code, want, r.stderr)
		}
		r = b.run(t, "", key, "query", "-d", db, "-q", "select id from big where nosuch > 1", "--format", "csv")
		if r.code != 3 || !strings.Contains(r.stderr, "bit: error: column \"nosuch\" does not exist\n  LINE 1: select id from big where nosuch > 1\n"+strings.Repeat(" ", 35)+"^\n  status: 400") {
			t.Errorf("streamed: exit %d\n%s", r.code, r.stderr)
		}
	})
}

// TestKeyList lists, revokes by id and lists again, and checks that no key
// itself is ever printed.
func TestKeyList(t *testing.T) {
	s := bitdtest.Start(t)
	b := newBitCLI(t, s)
	name := bitdtest.UniqueName("kl")
	k0 := s.NewUser(t, name, "")
	kb := b.withEnv("BITKIT_API_KEY=" + k0)
	k1, _ := decode(t, kb.ok(t, "key", "create"))["api_key"].(string)

	list := kb.ok(t, "key", "list")
	if strings.Contains(list, k0) || strings.Contains(list, k1) || strings.Contains(list, "v2_") {
		t.Fatalf("key list shows a key: %s", list)
	}
	keys := decode(t, list)["api_keys"].([]any)
	if len(keys) != 2 {
		t.Fatalf("%d keys listed, want 2: %s", len(keys), list)
	}
	var current, other string
	for _, k := range keys {
		m := k.(map[string]any)
		id, _ := m["id"].(string)
		if id == "" || m["label"] == "" || m["date_created"] == nil {
			t.Errorf("key entry: %v", m)
		}
		if m["current"] == true {
			current = id
		} else {
			other = id
		}
	}
	if current == "" || other == "" {
		t.Fatalf("want one current key and one other: %s", list)
	}
	table := kb.ok(t, "key", "list", "--format", "table")
	if !strings.HasPrefix(table, "id ") || !strings.Contains(table, current) || !strings.Contains(table, "last_used") {
		t.Errorf("table:\n%s", table)
	}
	kb.ok(t, "key", "revoke", "--id", other)
	if r := kb.run(t, "", "-k", k1, "account"); r.code != 3 || !strings.Contains(r.stderr, "status: 401") {
		t.Errorf("the key revoked by id still works: exit %d %s", r.code, r.stderr)
	}
	after := decode(t, kb.ok(t, "key", "list"))["api_keys"].([]any)
	if len(after) != 1 || after[0].(map[string]any)["id"] != current {
		t.Errorf("after revoking %s: %v", other, after)
	}
	r := kb.run(t, "", "key", "revoke", "--id", other)
	if r.code != 3 || !strings.Contains(r.stderr, "status: 404") {
		t.Errorf("revoking an unknown id: exit %d %s", r.code, r.stderr)
	}
}

// TestVersionFromBuild builds bit the way the Makefile does, with the version
// set by -ldflags, and checks that --version prints it.
func TestVersionFromBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bit")
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, flag := range []string{"--version", "-v"} {
		out, err := exec.CommandContext(t.Context(), bin, flag).Output()
		if err != nil || !strings.HasPrefix(string(out), "bit v9.8.7-test (go1.") {
			t.Errorf("bit %s: %q %v", flag, out, err)
		}
	}
}
