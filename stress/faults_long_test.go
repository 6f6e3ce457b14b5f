//go:build stress

// The tests in this file kill bitd during a job and wait for the restarted
// bitd to rescue it, which bitd dev does after 1 minute; they are built only
// with -tags stress (make stress). make test covers a SIGKILL during an
// import in server/internal/jobs (TestE2EImportExport) on every run.

package stress

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// TestKillBitdDuringImport: bitd is SIGKILLed while an import job runs. After
// a restart the job reaches DONE and the table holds every row exactly once.
func TestKillBitdDuringImport(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	s := startScanned(t)
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "killimport", true)
	const n = 1_000_000
	// quoted fields keep the file off the upload fast path (loaded during
	// the upload): this test kills bitd while the job loads it
	id := c.startImport(t, db, "big", quotedCSVRows(n), "")
	state := waitProcessing(t, c, "import", id)
	s.Restart(t, syscall.SIGKILL)
	c = newClient(s.Endpoint, s.APIKey)
	r := c.waitJob(t, "import", id, 5*time.Minute)
	if r.str("state") != "DONE" {
		t.Fatalf("import after SIGKILL: %s", r.Raw)
	}
	q := c.mustQuery(t, db, "select count(*), count(distinct id), min(id), max(id) from big")
	if want := fmt.Sprintf("[[%d,%d,1,%d]]", n, n, n); !strings.Contains(string(q.Raw), want) {
		t.Fatalf("after the killed import the table holds %s, want count, distinct, min, max = %s", q.Raw, want)
	}
	record(t, fmt.Sprintf("SIGKILL bitd while an import of %d CSV rows is %s, then restart", n, state),
		"job DONE; every row exactly once")
}

// TestKillBitdDuringExport: the same for an export job; the file behind the
// download URL holds every row exactly once.
func TestKillBitdDuringExport(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	s := startScanned(t)
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "killexport", true)
	const n = 2_000_000
	c.mustQuery(t, db, fmt.Sprintf("create table big as select g as id, md5(g::text) as v from generate_series(1, %d) g", n))
	exp := c.do(t, "POST", "/v2beta/db/"+db+"/export/", map[string]any{"query_string": "select id, v from big", "file_name": "big.csv"})
	if exp.Status != http.StatusAccepted {
		t.Fatalf("export: %d %s", exp.Status, exp.Raw)
	}
	state := waitProcessing(t, c, "export", exp.str("id"))
	s.Restart(t, syscall.SIGKILL)
	c = newClient(s.Endpoint, s.APIKey)
	r := c.waitJob(t, "export", exp.str("id"), 5*time.Minute)
	if r.str("state") != "DONE" || r.str("download_url") == "" {
		t.Fatalf("export after SIGKILL: %s", r.Raw)
	}
	resp, err := http.Get(r.str("download_url"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	lines, seen := 0, make(map[string]bool, n)
	for sc.Scan() {
		lines++
		id, _, _ := strings.Cut(sc.Text(), ",")
		if seen[id] {
			t.Fatalf("row %s appears twice in the export", id)
		}
		seen[id] = true
	}
	if resp.StatusCode != 200 || lines != n+1 {
		t.Fatalf("download after the killed export: status %d, %d lines, want %d rows + header", resp.StatusCode, lines, n)
	}
	record(t, fmt.Sprintf("SIGKILL bitd while an export of %d rows is %s, then restart", n, state),
		"job DONE; the file holds every row exactly once")
}

// quotedCSVRows is csvRows with the names quoted.
func quotedCSVRows(n int) []byte { return csvRowsOf(n, "%d,\"row %d\"\n") }

// waitProcessing waits until a job has started (bounded) and returns the
// state it was in.
func waitProcessing(t *testing.T, c *client, kind, id string) string {
	t.Helper()
	testwait.Eventually(t, 2*time.Minute, func() error {
		r := c.do(t, "GET", "/v2beta/"+kind+"/"+id, nil)
		switch r.str("state") {
		case "PROCESSING":
			return nil
		case "DONE", "FAILED":
			t.Fatalf("%s job finished before it could be killed (make the data larger): %s", kind, r.Raw)
		}
		return fmt.Errorf("%s job %s never started", kind, id)
	})
	return "PROCESSING"
}
