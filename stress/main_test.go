// Package stress is bitkit's proof-under-stress suite: tenant
// isolation and attack tests, a mixed load, and fault injection, all against
// real bitd processes on a real PostgreSQL.
//
// The fast parts run in `make test`. `make stress` runs the long versions
// (BITKIT_STRESS=1: 200 clients for 60 s, PostgreSQL restarts under load) and
// regenerates docs/reliability.md from what the tests recorded.
package stress

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

func TestMain(m *testing.M) {
	// The parallel tests here mostly wait (for timeouts, restarts, rescues),
	// so more of them may overlap than there are cores; -parallel still wins.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && !fuzzing() {
		_ = flag.Set("test.parallel", "8")
	}
	code := m.Run()
	if fuzzing() {
		// A -fuzz run (scripts/fuzz.sh) writes no report: its worker
		// processes would each overwrite the one of the full suite.
		os.Exit(code)
	}
	out := os.Getenv("BITKIT_RELIABILITY_OUT")
	if out == "" {
		out = filepath.Join(bitdtest.RepoRoot(), "test-artifacts", "reliability.md")
	}
	if err := writeReport(out); err != nil {
		fmt.Fprintln(os.Stderr, "writing reliability report:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process runs with -fuzz (as the coordinator
// or as one of its workers).
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// fuzzCoordinator reports whether this process coordinates a -fuzz run: it
// never executes inputs itself (its workers do), so it needs no bitd.
func fuzzCoordinator() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() != "" && (w == nil || w.Value.String() != "true")
}

// scanLogs fails the test if any credential the suite used appears in the
// log of the given bitd. It stops bitd first so the log is complete.
func scanLogs(t testing.TB, s *bitdtest.Server) {
	t.Helper()
	s.Stop(t)
	logs := s.Logs()
	if strings.TrimSpace(logs) == "" {
		t.Errorf("bitd wrote no log at all; the secret scan would prove nothing")
		return
	}
	n := checkSecrets(t, s.LogPath, logs)
	record(t, fmt.Sprintf("grep bitd's log (%d bytes) for all %d credentials used", len(logs), n), "none found")
}

// checkSecrets fails the test if any credential the suite used appears in
// logs, and returns how many were searched for.
func checkSecrets(t testing.TB, what, logs string) int {
	t.Helper()
	secrets.Lock()
	defer secrets.Unlock()
	for _, sec := range secrets.list {
		if strings.Contains(logs, sec) {
			t.Errorf("a credential (len %d, prefix %q) appears in the log of %s", len(sec), sec[:4], what)
		}
	}
	return len(secrets.list)
}
