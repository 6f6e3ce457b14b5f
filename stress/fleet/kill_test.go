//go:build fleet

package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/pgdirect"
	"github.com/jackc/pgx/v5/pgxpool"
)

// newDB creates a database through endpoint (HAProxy's when "") and
// returns "account/name"; the test's clean-up deletes it (the drop runs in
// the background, so the primary's --ephemeral clean-up has little left).
func newDB(t *testing.T, f *fleet, prefix string, endpoint ...string) string {
	t.Helper()
	ep := "http://" + f.HTTP
	if len(endpoint) > 0 {
		ep = endpoint[0]
	}
	name := bitdtest.UniqueName(prefix)
	if a := call(t, "POST", ep+"/v2beta/db/", f.Key, map[string]any{"name": name}); a.Status != http.StatusCreated {
		t.Fatalf("create database %s through %s: %d %s", name, ep, a.Status, a.Raw)
	}
	db := f.User + "/" + name
	t.Cleanup(func() {
		a, err := callE(context.Background(), "DELETE", "http://"+f.HTTP+"/v2beta/db/"+db, f.Key, nil)
		if err != nil || a.Status != 200 {
			t.Logf("delete %s: %v %d %s", db, err, a.Status, a.Raw)
		}
	})
	return db
}

// testKillDuringStream: the replica serving an NDJSON stream through
// HAProxy is SIGKILLed mid-stream; the client sees a cut stream (a
// transport error or no row_count trailer), never a complete-looking one.
func testKillDuringStream(t *testing.T, f *fleet) {
	db := newDB(t, f, "kstream_")
	const total = 5000000
	body, _ := json.Marshal(map[string]any{"database_name": db,
		"query_string": fmt.Sprintf("select g, repeat('x', 100) as pad from generate_series(1, %d) g", total)})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+f.HTTP+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	victim := f.replica(res.Header.Get("X-Bitkit-Replica"))
	if victim == nil {
		t.Fatalf("HAProxy named no replica (X-Bitkit-Replica %q)", res.Header.Get("X-Bitkit-Replica"))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	lines := 0
	for lines < 1000 && sc.Scan() {
		lines++
	}
	if lines < 1000 {
		t.Fatalf("the stream ended after %d lines before the kill: %v", lines, sc.Err())
	}
	f.kill(t, victim)
	last := ""
	for sc.Scan() {
		lines++
		last = sc.Text()
	}
	cut := sc.Err()
	if strings.HasPrefix(last, `{"row_count":`) {
		t.Fatalf("the stream from the killed %s ended with a trailer %q after %d lines: a cut stream looks complete", victim.Name, last, lines)
	}
	if cut == nil && !strings.HasPrefix(last, `{"error":`) {
		// A clean end of the body without the trailer: the NDJSON
		// contract still makes it an error for the client (no trailer),
		// but say what happened.
		t.Logf("the body ended cleanly after %d lines without a trailer (last %.60q): the client reports the missing trailer", lines, last)
	} else {
		t.Logf("the stream from %s was cut after %d of %d rows: %v", victim.Name, lines-1, total, cut)
	}
	if lines-1 >= total {
		t.Fatalf("all %d rows arrived although %s was killed", total, victim.Name)
	}
	f.restart(t, victim)
}

// testKillDuringWireSession: a pgdirect client writes through HAProxy's
// wire port; the replica holding its session is SIGKILLed; pgdirect
// reconnects through HAProxy to another replica and every write it saw
// acknowledged is in the database.
func testKillDuringWireSession(t *testing.T, f *fleet) {
	ctx := t.Context()
	db := newDB(t, f, "kwire_")
	sql(t, "http://"+f.HTTP, f.Key, db, "create table acks (id int primary key)")
	pc, err := pgdirect.New(ctx, f.Key, pgdirect.WithAddr(f.PG), pgdirect.WithSSLMode("disable"), pgdirect.WithMaxConns(1))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	backend := func() (int, error) {
		var pid int
		err := pc.WithConn(ctx, db, func(c *pgxpool.Conn) error {
			return c.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid)
		})
		return pid, err
	}
	if _, err := backend(); err != nil {
		t.Fatalf("pgdirect through HAProxy's wire port %s: %v", f.PG, err)
	}
	victim := f.wireOwner(t)

	var mu sync.Mutex
	var acked []int
	var failed []error
	ackedAfterKill := 0
	killed := false
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := pc.WithConn(ctx, db, func(c *pgxpool.Conn) error {
				_, err := c.Exec(ctx, "insert into acks values ($1)", i)
				return err
			})
			mu.Lock()
			if err == nil {
				acked = append(acked, i)
				if killed {
					ackedAfterKill++
				}
			} else {
				failed = append(failed, err)
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	eventually(t, 30*time.Second, "writes acknowledged before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 50
	})
	f.kill(t, victim)
	mu.Lock()
	killed = true
	mu.Unlock()
	eventually(t, 30*time.Second, "pgdirect writes again through HAProxy after the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ackedAfterKill >= 50
	}, func() string { return fmt.Sprintf("%d errors, last %v", len(failed), failed[max(0, len(failed)-1):]) })
	close(stop)
	wg.Wait()

	if _, err := backend(); err != nil {
		t.Fatal(err)
	}
	now := f.wireOwner(t).Name
	if now == victim.Name {
		t.Fatalf("after the kill the session is on the killed %s", now)
	}
	var ids []string
	for _, id := range acked {
		ids = append(ids, fmt.Sprint(id))
	}
	got := scalar(sql(t, "http://"+f.HTTP, f.Key, db, "select count(*) from acks where id in ("+strings.Join(ids, ",")+")"))
	if got != fmt.Sprint(len(acked)) {
		t.Fatalf("%s of %d acknowledged writes are in the table", got, len(acked))
	}
	t.Logf("session on %s killed; pgdirect reconnected to %s; %d writes acknowledged (%d after the kill), all present; %d failed at the kill (%v)",
		victim.Name, now, len(acked), ackedAfterKill, len(failed), failed)
	f.restart(t, victim)
}

// testKillDuringJobs: the replicas running an import and an export are
// SIGKILLed mid-job; another replica finishes both (river rescues them):
// the import's rows are there exactly once, the export's file is complete.
func testKillDuringJobs(t *testing.T, f *fleet) {
	lb := "http://" + f.HTTP
	db := newDB(t, f, "kjobs_")
	admins := f.clusterAdmins(t) // the database lands on either cluster
	table := bitdtest.UniqueName("slowimp_")
	// A row trigger that sleeps makes the import's COPY last seconds.
	sql(t, lb, f.Key, db, fmt.Sprintf(`create table %[1]s (id int, name text);
		create function slow_row() returns trigger language plpgsql as $$ begin perform pg_sleep(0.001); return new; end $$;
		create trigger slow before insert on %[1]s for each row execute function slow_row()`, table))
	const n = 5000
	marker := bitdtest.UniqueName("expmark_")
	jobs := []struct {
		mark   string // in the job's statement, for pg_stat_activity
		submit func() string
	}{
		{table, func() string {
			// if_exists=replace: the job path (a replace never takes the
			// upload fast path, which loads in the upload request itself).
			return importCSV(t, lb, f.Key, db, table, csvRows(1, n), "if_exists", "replace")
		}},
		{marker, func() string {
			exp := call(t, "POST", lb+"/v2beta/db/"+db+"/export/", f.Key, map[string]any{
				"query_string":  fmt.Sprintf("select g as id, md5(g::text) as h from generate_series(1, %d) g where pg_sleep(0.001)::text = '' /* %s */", n, marker),
				"export_format": "csv"})
			if exp.Status != http.StatusAccepted || exp.str("id") == "" {
				t.Fatalf("export: %d %s", exp.Status, exp.Raw)
			}
			return exp.str("id")
		}},
	}

	// One job at a time: submitted, picked up by a replica (its log says
	// so) that runs its statement in PostgreSQL, and that replica is
	// killed. (Submitted together, a replica could fetch both and be
	// killed before it logs the second.)
	var killed []*replica
	var ids []string
	ranOn := map[string]*replica{} // job id → the killed replica that ran it
	for _, job := range jobs {
		id := job.submit()
		ids = append(ids, id)
		var r *replica
		eventually(t, 60*time.Second, "a replica picks up job "+id+" and runs its statement", func() bool {
			r = f.jobRunner(id)
			return r != nil && activeCount(t, admins, job.mark, false) > 0
		})
		ranOn[id] = r
		f.kill(t, r)
		killed = append(killed, r)
		t.Logf("killed %s while it ran job %s", r.Name, id)
	}
	imp, expID := ids[0], ids[1]
	start := time.Now()
	st := waitJob(t, lb, f.Key, "import", imp, 4*time.Minute)
	if st.str("state") != "DONE" {
		t.Fatalf("the import ended %s", st.Raw)
	}
	got := scalar(sql(t, lb, f.Key, db, fmt.Sprintf("select count(*) || '/' || count(distinct id) from %s", table)))
	if got != fmt.Sprintf("%d/%d", n, n) {
		t.Fatalf("after the rescue the table holds %s rows/distinct ids; want exactly %d/%d", got, n, n)
	}
	done := waitJob(t, lb, f.Key, "export", expID, 4*time.Minute)
	if done.str("state") != "DONE" {
		t.Fatalf("the export ended %s", done.Raw)
	}
	body := download(t, done.str("download_url"))
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != n+1 || lines[0] != "id,h" || lines[n] != fmt.Sprintf("%d,%x", n, md5sum(n)) {
		t.Fatalf("the export file has %d lines (want %d with the header), first %q last %q", len(lines), n+1, lines[0], lines[len(lines)-1])
	}
	t.Logf("both jobs finished on the surviving replicas %v after the kill (import %d rows exactly once, export %d rows)",
		time.Since(start).Round(time.Second), n, n)
	// The killed replicas are still down: another replica picked each job
	// up again and finished it.
	for _, job := range ids {
		var by []string
		others := 0
		for _, r := range f.Replicas {
			if n := pickups(r, job); n > 0 {
				by = append(by, fmt.Sprintf("%s×%d", r.Name, n))
				if r != ranOn[job] {
					others += n
				}
			}
		}
		if others == 0 {
			t.Errorf("job %s: no replica other than the killed %s picked it up (pick-ups: %v)", job, ranOn[job].Name, by)
		}
		t.Logf("job %s was picked up by %v", job, by)
	}
	f.restart(t, killed...)
}

// md5sum is PostgreSQL's md5(n::text), as bytes.
func md5sum(n int) [16]byte { return md5.Sum([]byte(strconv.Itoa(n))) }
