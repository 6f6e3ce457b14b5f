package stress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// activeBackends counts the sessions of PostgreSQL (seen as the superuser of
// TEST_DATABASE_URL) that are running or in a transaction and whose query
// text contains marker.
func activeBackends(t *testing.T, marker string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatalf("connect to PostgreSQL to watch pg_stat_activity: %v", err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND state <> 'idle' AND position($1 in query) > 0`, marker).Scan(&n); err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return n
}

// TestStalledStreamReader: a client reads the header line of a streamed
// answer, then stops reading with the connection open. bitd must not hold
// the PostgreSQL backend longer than its statement timeout (5 s here): the
// backend must be gone within a bounded wait while the client still stalls.
func TestStalledStreamReader(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	tried(t, "client reads a stream's header line, then stalls with the connection open (statement timeout 5 s)")
	s := startScanned(t, bitdtest.Args("--statement-timeout", "5s"))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "stall", true)
	marker := "stall_marker_" + randSuffix()

	body, _ := json.Marshal(map[string]any{"database_name": db,
		"query_string": fmt.Sprintf("select a * 100000 + b, repeat('x', 8000) as %s from generate_series(1, 1000) a, generate_series(1, 100000) b", marker)})
	req, _ := http.NewRequest("POST", s.Endpoint+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	header, err := bufio.NewReaderSize(resp.Body, 16).ReadString('\n')
	if err != nil || !strings.Contains(header, "columns") {
		t.Fatalf("stream header line: %q %v", header, err)
	}
	// Now stall: read nothing more, keep the connection open. The query
	// produces 8 kB rows as it goes, so the socket buffers between bitd and
	// the client (a few MB on loopback) are full long before the timeout:
	// bitd is then blocked writing to the client when the timeout fires.
	seen := activeBackends(t, marker)
	t0 := time.Now()
	if err := testwait.Wait(t.Context(), 90*time.Second, func() error {
		if n := activeBackends(t, marker); n != 0 {
			return fmt.Errorf("%d backend(s) still run the query", n)
		}
		return nil
	}); err != nil {
		t.Fatalf("a client that stalls reading a stream still holds a PostgreSQL backend 90 s later (statement timeout 5 s; %d backend(s) seen at the stall): %v", seen, err)
	}
	waited := time.Since(t0)
	record(t, "client reads a stream's header line, then stalls with the connection open (statement timeout 5 s)",
		fmt.Sprintf("backend released after about %v while the client still stalled", waited.Round(time.Second)))
}

// TestBlobStoreFull: the blob store is a 2 MiB tmpfs. An export larger than
// that fails with a clear error, an upload larger than that is refused, and
// afterwards (the partial files cleaned up) small jobs still work.
func TestBlobStoreFull(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("cannot mount a 2 MiB tmpfs as the full disk (the suite runs as root, as make test does on CI): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	tried(t, "blob store on a full 2 MiB disk: upload, export, recovery")
	s := startScanned(t, bitdtest.Args("--blob-url", "file://"+dir))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "full", true)
	c.mustQuery(t, db, "create table big as select g as id, md5(g::text) || md5(g::text) as v from generate_series(1, 200000) g")

	up := c.importStart(t, db, "upload", bytes.Repeat([]byte("id,name\n1,x\n"), 400_000), "")
	// The client did nothing wrong: a full store is the server's problem
	// (503/507), never a 4xx that blames the upload.
	if (up.Status != 503 && up.Status != 507) || up.str("code") == "" {
		t.Errorf("4.8 MB upload into a 2 MiB store: %d %s, want 503 or 507 with a JSON error that says the store is full", up.Status, up.Raw)
	}
	if up.Status == 503 && up.Header.Get("Retry-After") == "" {
		t.Errorf("upload into a full store: 503 without Retry-After")
	}
	record(t, "upload of 4.8 MB into a 2 MiB blob store", fmt.Sprintf("refused: %d %s", up.Status, up.str("code")))
	smallImport(t, c, db, "small1")

	exp := c.do(t, "POST", "/v2beta/db/"+db+"/export/", map[string]any{"table_name": "big", "schema_name": "public", "file_name": "big.csv"})
	if exp.Status != http.StatusAccepted {
		t.Fatalf("export: %d %s", exp.Status, exp.Raw)
	}
	// A full disk does not clear itself within a retry's backoff: the job
	// must end FAILED, with an error that says what happened, in bounded time.
	r := c.waitJob(t, "export", exp.str("id"), 90*time.Second)
	if r.str("state") != "FAILED" || r.str("error_type") == "" || r.Body["error_details"] == nil {
		t.Fatalf("export of ~14 MB into a 2 MiB store: %s, want FAILED with error_type and error_details", r.Raw)
	}
	record(t, "export of ~14 MB into a 2 MiB blob store", "FAILED: "+r.str("error_type"))

	// Nothing left behind: the store has room again and small jobs work.
	smallImport(t, c, db, "small2")
	if q := c.mustQuery(t, db, "select count(*) from big"); !strings.Contains(string(q.Raw), "[[200000]]") {
		t.Fatalf("source table changed: %s", q.Raw)
	}
	if q := c.query(t, db, "select count(*) from upload"); q.Status == 200 {
		t.Fatalf("the refused upload left a table behind: %s", q.Raw)
	}
	record(t, "after the disk-full failures", "partial files removed; small imports succeed; no table from the refused upload")
}

// smallImport imports 100 rows into table and checks they are all there.
func smallImport(t *testing.T, c *client, db, table string) {
	t.Helper()
	id := c.startImport(t, db, table, csvRows(100), "")
	if r := c.waitJob(t, "import", id, 2*time.Minute); r.str("state") != "DONE" {
		t.Fatalf("a small import (%s) after a disk-full failure: %s", table, r.Raw)
	}
	if q := c.mustQuery(t, db, "select count(*) from "+table); !strings.Contains(string(q.Raw), "[[100]]") {
		t.Fatalf("small import %s: %s", table, q.Raw)
	}
}
