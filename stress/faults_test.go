package stress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// privateCluster starts a PostgreSQL cluster of the test's own (so that it
// can be restarted without disturbing the shared one) and returns its URL and
// a restart function.
func privateCluster(t *testing.T) (url string, restart func()) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bitkit-fault-pg-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := append(os.Environ(), "BITKIT_PG_DIR="+filepath.Join(dir, "pg"), fmt.Sprintf("BITKIT_PG_PORT=%d", port))
	script := func(name string, args ...string) string {
		cmd := exec.Command(filepath.Join(bitdtest.RepoRoot(), "scripts", name), args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	url = script("pg-up.sh")
	t.Cleanup(func() { script("pg-down.sh", "--purge"); os.RemoveAll(dir) })
	return url, func() { script("pg-down.sh"); script("pg-up.sh") }
}

// TestPostgresRestartUnderLoad: writers keep inserting while PostgreSQL is
// restarted. During the outage bitd answers 503 with Retry-After (never 500
// and never a hang); afterwards it recovers by itself, and every write a
// client saw succeed is in the table.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	url, restart := privateCluster(t)
	s := start(t, bitdtest.Args("--database-url", url))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "faults", true)
	c.mustQuery(t, db, "create table w (client int, seq int, primary key (client, seq))")

	const writers = 16
	acked := make([][]int, writers)
	var stop atomic.Bool
	var bad sync.Map // status → count of unexpected answers
	var during503 atomic.Int64
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(s.Endpoint, s.APIKey)
			for seq := 1; !stop.Load(); seq++ {
				r, err := cl.doE("POST", "/v2beta/query", map[string]any{"database_name": db,
					"query_string": "insert into w values ($1, $2)", "params": []any{i, seq}})
				switch {
				case err != nil:
					bad.Store("transport: "+err.Error(), 1)
				case r.Status == 200:
					acked[i] = append(acked[i], seq)
				case r.Status == 503 && r.Header.Get("Retry-After") != "":
					during503.Add(1)
					time.Sleep(50 * time.Millisecond)
				default:
					bad.Store(fmt.Sprintf("%d %s", r.Status, r.Raw), 1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	restart()
	// Recovery: bitd must serve again by itself (bounded wait, not a timing assertion).
	recovered := testwait.Wait(t.Context(), 60*time.Second, func() error {
		r, err := c.doE("POST", "/v2beta/query", map[string]any{"database_name": db, "query_string": "select 1"})
		if err == nil && r.Status != 200 {
			err = fmt.Errorf("%d %s", r.Status, r.Raw)
		}
		return err
	}) == nil
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if !recovered {
		t.Fatalf("bitd did not recover within 60 s of the PostgreSQL restart\n%s", s.Logs())
	}
	bad.Range(func(k, _ any) bool { t.Errorf("unexpected answer during restart: %v", k); return true })

	total := checkAcked(t, c, db, acked)
	if total == 0 {
		t.Fatal("no write succeeded at all")
	}
	record(t, fmt.Sprintf("restart PostgreSQL under %d concurrent writers", writers),
		fmt.Sprintf("%d acknowledged writes all present; %d answers were 503 with Retry-After during the outage; bitd recovered by itself", total, during503.Load()))
}

// TestKillBitdMidStream: bitd is SIGKILLed while streaming a large result.
// The client can tell the stream was cut (no trailer), and PostgreSQL is not
// left running the query.
func TestKillBitdMidStream(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	s := start(t)
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "killstream", true)

	body, _ := json.Marshal(map[string]any{"database_name": db, "query_string": "select g, repeat('x', 100) from generate_series(1, 50000000) g"})
	req, _ := http.NewRequest("POST", s.Endpoint+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; i < 1000 && sc.Scan(); i++ {
	}
	s.Restart(t, syscall.SIGKILL)
	var last []byte
	for sc.Scan() {
		last = append(last[:0], sc.Bytes()...)
	}
	if bytes.Contains(last, []byte(`"row_count"`)) {
		t.Fatalf("a cut stream ended with a success trailer: %s", last)
	}
	// Tenants cannot read pg_stat_activity (it shows other tenants'
	// sessions): watch as the cluster's superuser.
	testwait.Eventually(t, 60*time.Second, func() error {
		if activeBackends(t, "generate_series(1, 50000000)") != 0 {
			return errors.New("the streaming query is still running in PostgreSQL after bitd was killed")
		}
		return nil
	})
	record(t, "SIGKILL bitd while it streams 50M rows", "client sees a cut stream (no trailer); backend query ends; bitd restarts cleanly")
}
