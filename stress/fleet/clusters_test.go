//go:build fleet

package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/jackc/pgx/v5"
)

// defaultName is the cluster of --database-url, where the metadata
// database also is.
const defaultName = "default"

// metaConn connects to the fleet's metadata database as the shared
// cluster's superuser (to read where databases are placed).
func (f *fleet) metaConn(t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = f.Replicas[0].S.MetadataDB
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to the metadata database: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// placement reads the cluster and the PostgreSQL name of the live
// database db ("account/name") from the metadata database.
func (f *fleet) placement(t *testing.T, db string) (cluster, pgName string) {
	t.Helper()
	account, name, _ := strings.Cut(db, "/")
	err := f.metaConn(t).QueryRow(t.Context(), `SELECT d.placement, d.pg_name FROM databases d JOIN accounts a ON a.id = d.account_id
		WHERE lower(a.name) = lower($1) AND lower(d.name) = lower($2) AND d.deleted_at IS NULL`, account, name).Scan(&cluster, &pgName)
	if err != nil {
		t.Fatalf("placement of %s: %v", db, err)
	}
	return cluster, pgName
}

// clusterCounts is `bitd admin cluster list`: cluster → live databases.
func (f *fleet) clusterCounts(t *testing.T) map[string]int {
	t.Helper()
	out := f.Replicas[0].S.Admin(t, "cluster", "list")
	var l struct {
		Clusters []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			Databases int    `json:"databases"`
		} `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("bitd admin cluster list: %v: %s", err, out)
	}
	m := map[string]int{}
	for _, c := range l.Clusters {
		m[c.Name] = c.Databases
	}
	return m
}

// hasDatabase reports whether the cluster of adminURL holds database pg.
func hasDatabase(t *testing.T, adminURL, pg string) bool {
	t.Helper()
	c, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatalf("connect to a cluster as its superuser: %v", err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, pg).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// portOf is the port of the cluster a database should be on, as
// current_setting('port') reports it inside a tenant's session.
func (f *fleet) portOf(t *testing.T, cluster string) string {
	t.Helper()
	if cluster == secondName {
		return strconv.Itoa(f.PG2.Port)
	}
	u, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// dbOnEach creates databases through HAProxy until one is placed on each
// cluster (the policy is fewest live databases, so it takes one or two
// creations, rarely more) and returns cluster → "account/name".
func dbOnEach(t *testing.T, f *fleet, prefix string) map[string]string {
	t.Helper()
	got := map[string]string{}
	var all []string
	for i := 0; i < 6 && len(got) < 2; i++ {
		db := newDB(t, f, prefix)
		c, _ := f.placement(t, db)
		all = append(all, db+"@"+c)
		if _, ok := got[c]; !ok {
			got[c] = db
		}
	}
	if got[defaultName] == "" || got[secondName] == "" {
		t.Fatalf("databases created through HAProxy were placed %v; want one on %q and one on %q (cluster list: %v)", all, defaultName, secondName, f.clusterCounts(t))
	}
	return got
}

// ndjson runs q as an NDJSON stream through endpoint and returns the
// status and the lines.
func ndjson(t *testing.T, endpoint, key, db, q string) (int, []string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"database_name": db, "query_string": q})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", endpoint+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("NDJSON stream through %s: %v", endpoint, err)
	}
	defer res.Body.Close()
	var lines []string
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("NDJSON stream through %s cut after %d lines: %v", endpoint, len(lines), err)
	}
	return res.StatusCode, lines
}

// checkPaths runs every path through HAProxy on db, which must be on
// cluster: HTTP queries (and reads through each replica directly), an
// NDJSON stream, an import job, an export and its download, and a wire
// session through HAProxy's wire port. Each path's session reports the
// port of the cluster it runs on (current_setting('port')), which must be
// cluster's.
func checkPaths(t *testing.T, f *fleet, db, cluster string) {
	t.Helper()
	lb, key, ctx := "http://"+f.HTTP, f.Key, t.Context()
	port := f.portOf(t, cluster)
	sql(t, lb, key, db, "create table t (id int primary key, v text); insert into t select g, 'v' || g from generate_series(1, 100) g")
	if got := scalar(sql(t, lb, key, db, "select current_setting('port')")); got != port {
		t.Fatalf("%s (placed on %s, port %s): an HTTP query ran on port %s", db, cluster, port, got)
	}
	for _, r := range f.Replicas {
		if got := scalar(sql(t, r.S.Endpoint, key, db, "select count(*) || ' on ' || current_setting('port') from t")); got != "100 on "+port {
			t.Fatalf("%s through %s: %q, want %q", db, r.Name, got, "100 on "+port)
		}
	}

	// The columns line, 100 rows, the row_count trailer.
	st, lines := ndjson(t, lb, key, db, "select id, v from t order by id")
	if st != 200 || len(lines) != 102 || !strings.HasPrefix(lines[0], `{"columns":`) || lines[1] != `[1,"v1"]` || !strings.HasPrefix(lines[101], `{"row_count":100`) {
		t.Fatalf("%s: NDJSON stream through HAProxy answered %d with %d lines (last %q)", db, st, len(lines), lines[max(len(lines)-1, 0):])
	}

	csv := csvRows(1, 500)
	job := importCSV(t, lb, key, db, "imp", csv)
	if a := waitJob(t, lb, key, "import", job, 2*time.Minute); a.str("state") != "DONE" {
		t.Fatalf("%s: import through HAProxy ended %s", db, a.Raw)
	}
	if got := scalar(sql(t, lb, key, db, "select count(*) from imp")); got != "500" {
		t.Fatalf("%s: %s rows imported, want 500", db, got)
	}

	exp := call(t, "POST", lb+"/v2beta/db/"+db+"/export/", key, map[string]any{"query_string": "select id, name from imp order by id", "export_format": "csv"})
	if exp.Status != http.StatusAccepted {
		t.Fatalf("%s: export through HAProxy: %d %s", db, exp.Status, exp.Raw)
	}
	done := waitJob(t, lb, key, "export", exp.str("id"), 2*time.Minute)
	if done.str("state") != "DONE" {
		t.Fatalf("%s: export ended %s", db, done.Raw)
	}
	if got := download(t, done.str("download_url")); got != csv {
		t.Fatalf("%s: the export downloaded %d bytes, not the %d imported (start %.60q)", db, len(got), len(csv), got)
	}

	conn, err := wireConn(ctx, f.PG, db, key)
	if err != nil {
		t.Fatalf("%s: wire session through HAProxy: %v", db, err)
	}
	defer conn.Close(context.Background())
	var n int
	var p string
	if err := conn.QueryRow(ctx, "select count(*), current_setting('port') from imp").Scan(&n, &p); err != nil || n != 500 || p != port {
		t.Fatalf("%s: wire session through HAProxy: %d rows on port %s (%v), want 500 on %s", db, n, p, err, port)
	}
	if _, err := conn.Exec(ctx, "insert into t values (1000, 'wire')"); err != nil {
		t.Fatalf("%s: insert on a wire session through HAProxy: %v", db, err)
	}
	if got := scalar(sql(t, lb, key, db, "select count(*) from t")); got != "101" {
		t.Fatalf("%s: the wire session's insert is not seen over HTTP: %s rows", db, got)
	}
}

// testClusterPlacement: databases created through HAProxy land on both
// clusters (the metadata, `cluster list` and the clusters themselves
// agree), and every path works on a database of each.
func testClusterPlacement(t *testing.T, f *fleet) {
	dbs := dbOnEach(t, f, "place_")
	counts := f.clusterCounts(t)
	if counts[defaultName] < 1 || counts[secondName] < 1 {
		t.Fatalf("cluster list counts %v; want databases on both clusters", counts)
	}
	for c, db := range dbs {
		_, pg := f.placement(t, db)
		other := bitdtest.DatabaseURL(t)
		here := f.PG2.Admin
		if c == defaultName {
			here, other = other, here
		}
		if !hasDatabase(t, here, pg) || hasDatabase(t, other, pg) {
			t.Fatalf("%s (%s) is placed on %s but is not on that cluster only", db, pg, c)
		}
	}
	for _, c := range []string{defaultName, secondName} {
		checkPaths(t, f, dbs[c], c)
		t.Logf("every path through HAProxy works on %s (cluster %s, port %s)", dbs[c], c, f.portOf(t, c))
	}
	t.Logf("cluster list: %v", counts)
}

// queryOn runs a query through endpoint, returning the answer (no check).
func queryOn(t *testing.T, endpoint, db, q string, key string) answer {
	t.Helper()
	return call(t, "POST", endpoint+"/v2beta/query", key, map[string]any{"database_name": db, "query_string": q})
}

// testClusterDown: with the second cluster stopped, its databases answer
// 503 cluster_unavailable naming it through every replica (HTTP, stream,
// wire proxy), the default cluster's keep serving through every replica
// and HAProxy, HAProxy keeps every replica in rotation, a new database
// lands on the default cluster; once the cluster is back, everything
// recovers with nothing lost.
func testClusterDown(t *testing.T, f *fleet) {
	lb, key, ctx := "http://"+f.HTTP, f.Key, t.Context()
	dbs := dbOnEach(t, f, "down_")
	dbA, dbB := dbs[defaultName], dbs[secondName]
	for _, db := range []string{dbA, dbB} {
		sql(t, lb, key, db, "create table t (id int primary key); insert into t select generate_series(1, 10)")
		// Every replica has pooled connections to both clusters, which
		// the stop will break.
		for _, r := range f.Replicas {
			sql(t, r.S.Endpoint, key, db, "select count(*) from t")
		}
	}

	stopped := time.Now()
	if err := f.PG2.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("second cluster (port %d) stopped in %v", f.PG2.Port, time.Since(stopped).Round(time.Millisecond))
	// If anything below fails, the next subtests still need the cluster.
	t.Cleanup(func() {
		if f.PG2.pid() == 0 {
			f.PG2.up(t)
		}
	})

	for _, r := range f.Replicas {
		var a answer
		var served []string
		eventually(t, 15*time.Second, r.Name+" answers 503 cluster_unavailable for "+dbB, func() bool {
			a = queryOn(t, r.S.Endpoint, dbB, "select count(*) from t", key)
			if a.Status == 200 {
				served = append(served, string(a.Raw))
			}
			return a.Status == http.StatusServiceUnavailable && a.str("code") == "cluster_unavailable"
		}, func() string { return fmt.Sprintf("last answer %d %s", a.Status, a.Raw) })
		if len(served) > 0 {
			t.Errorf("%s answered 200 for %s after its cluster stopped: %v", r.Name, dbB, served)
		}
		if !strings.Contains(a.str("error"), `"`+secondName+`"`) || a.Header.Get("Retry-After") == "" {
			t.Errorf("%s: the 503 does not name the cluster or has no Retry-After: %s (Retry-After %q)", r.Name, a.Raw, a.Header.Get("Retry-After"))
		}
		if got := scalar(sql(t, r.S.Endpoint, key, dbA, "select count(*) from t")); got != "10" {
			t.Fatalf("%s: %s on the default cluster holds %s rows while the second is down", r.Name, dbA, got)
		}
	}
	t.Logf("every replica answers 503 cluster_unavailable for %s %v after the stop", dbB, time.Since(stopped).Round(time.Millisecond))

	// Through HAProxy: the default cluster's database on every replica,
	// the second's refused the same way on every replica.
	seenA, seenB := map[string]int{}, map[string]int{}
	for i := range 3 * replicaCount {
		a := queryOn(t, lb, dbA, fmt.Sprintf("insert into t values (%d)", 100+i), key)
		if a.Status != 200 {
			t.Fatalf("%s through HAProxy (%s) while the second cluster is down: %d %s", dbA, a.Replica, a.Status, a.Raw)
		}
		seenA[a.Replica]++
		b := queryOn(t, lb, dbB, "select 1", key)
		if b.Status != http.StatusServiceUnavailable || b.str("code") != "cluster_unavailable" {
			t.Fatalf("%s through HAProxy (%s): %d %s, want 503 cluster_unavailable", dbB, b.Replica, b.Status, b.Raw)
		}
		seenB[b.Replica]++
	}
	if len(seenA) != replicaCount || len(seenB) != replicaCount {
		t.Errorf("HAProxy spread the queries over %v (default cluster) and %v (second): want every replica in rotation", seenA, seenB)
	}
	if st, lines := ndjson(t, lb, f.Key, dbB, "select 1"); st != http.StatusServiceUnavailable || len(lines) == 0 || !strings.Contains(lines[0], "cluster_unavailable") {
		t.Fatalf("NDJSON stream on %s through HAProxy while its cluster is down: %d %v", dbB, st, lines)
	}
	if c, err := wireConn(ctx, f.PG, dbB, key); err == nil {
		c.Close(context.Background())
		t.Fatalf("a wire session to %s through HAProxy was accepted while its cluster is down", dbB)
	} else if !strings.Contains(err.Error(), "08006") || !strings.Contains(err.Error(), `"`+secondName+`"`) {
		t.Fatalf("wire session to %s through HAProxy while its cluster is down: %v; want SQLSTATE 08006 naming the cluster", dbB, err)
	}
	wc, err := wireConn(ctx, f.PG, dbA, key)
	if err != nil {
		t.Fatalf("wire session to %s (default cluster) through HAProxy while the second is down: %v", dbA, err)
	}
	if _, err := wc.Exec(ctx, "insert into t values (1000)"); err != nil {
		t.Fatalf("insert on a wire session to %s while the second cluster is down: %v", dbA, err)
	}
	wc.Close(context.Background())
	// A creation whose policy pick would be unreachable lands on the
	// default cluster.
	if c, _ := f.placement(t, newDB(t, f, "outage_")); c != defaultName {
		t.Fatalf("a database created while the second cluster is down was placed on %q", c)
	}
	// /readyz does not depend on the platform clusters: nobody left the
	// rotation.
	for name, row := range f.stats(t) {
		if be, srv, _ := strings.Cut(name, "/"); (be == "bitd_http" || be == "bitd_pg") && srv != "BACKEND" && srv != "FRONTEND" && !strings.HasPrefix(row["status"], "UP") {
			t.Errorf("HAProxy took %s out of rotation while the second cluster was down: %s", name, row["status"])
		}
	}

	// Back: every replica serves the second cluster's database again with
	// its rows, every path included.
	f.PG2.up(t)
	back := time.Now()
	for _, r := range f.Replicas {
		var a answer
		eventually(t, 30*time.Second, r.Name+" serves "+dbB+" again", func() bool {
			a = queryOn(t, r.S.Endpoint, dbB, "select count(*) from t", key)
			return a.Status == 200
		}, func() string { return fmt.Sprintf("last answer %d %s", a.Status, a.Raw) })
		if got := scalar(a); got != "10" {
			t.Fatalf("%s: %s holds %s rows after its cluster came back, want 10", r.Name, dbB, got)
		}
	}
	t.Logf("every replica serves %s again %v after the cluster was started", dbB, time.Since(back).Round(time.Millisecond))
	sql(t, lb, key, dbB, "insert into t values (11)")
	if st, lines := ndjson(t, lb, key, dbB, "select id from t order by id"); st != 200 || len(lines) != 13 || !strings.HasPrefix(lines[12], `{"row_count":11`) {
		t.Fatalf("NDJSON stream on %s after the restart: %d, %d lines", dbB, st, len(lines))
	}
	wc, err = wireConn(ctx, f.PG, dbB, key)
	if err != nil {
		t.Fatalf("wire session to %s through HAProxy after the restart: %v", dbB, err)
	}
	defer wc.Close(context.Background())
	var n int
	if err := wc.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 11 {
		t.Fatalf("wire session to %s after the restart: %d rows, %v", dbB, n, err)
	}
	if got := scalar(sql(t, lb, key, dbA, "select count(*) from t")); got != fmt.Sprint(10+3*replicaCount+1) {
		t.Fatalf("%s holds %s rows, want %d", dbA, got, 10+3*replicaCount+1)
	}
}

// adminWithSecret runs `bitd admin --data <r1's data> args...` with the
// fleet's BITD_SECRET in its environment only (db move provisions roles,
// whose passwords derive from it).
func (f *fleet) adminWithSecret(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bitdtest.Bitd(t), append([]string{"admin", "--data", f.Replicas[0].S.DataDir}, args...)...)
	cmd.Env = append(os.Environ(), "BITD_SECRET="+f.Secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bitd admin %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String()
}

// testClusterMove: a database on the default cluster moves to the second
// (`bitd admin db move`) while writers insert through HAProxy's HTTP
// frontend; every acknowledged insert is there after the move, the
// writes resume, every replica and the wire proxy reach the new cluster.
// The write pause is reported as bitd states it and as the writers saw
// it (the longest time without an acknowledged insert).
func testClusterMove(t *testing.T, f *fleet) {
	lb, key, ctx := "http://"+f.HTTP, f.Key, t.Context()
	db := dbOnEach(t, f, "move_")[defaultName]
	sql(t, lb, key, db, "create table w (id bigint primary key, writer int not null); create table keep (id int primary key); insert into keep select generate_series(1, 1000)")
	_, pg := f.placement(t, db)

	const writers = 4
	var (
		mu     sync.Mutex
		acked  []int
		ackAt  []time.Time
		failed = map[string]int{}
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := w*1_000_000 + i
				a, err := callE(context.WithoutCancel(ctx), "POST", lb+"/v2beta/query", key,
					map[string]any{"database_name": db, "query_string": fmt.Sprintf("insert into w values (%d, %d)", id, w)})
				mu.Lock()
				switch {
				case err != nil:
					failed[err.Error()]++
				case a.Status == 200:
					acked = append(acked, id)
					ackAt = append(ackAt, time.Now())
				default:
					failed[fmt.Sprintf("%d %s", a.Status, a.str("code"))]++
				}
				mu.Unlock()
				if err != nil || a.Status != 200 {
					time.Sleep(20 * time.Millisecond) // do not spin on refusals
				}
			}
		})
	}
	time.Sleep(time.Second)
	moveStart := time.Now()
	out := f.adminWithSecret(t, "db", "move", db, secondName)
	moveEnd := time.Now()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	var mv struct {
		Database string `json:"database"`
		From     string `json:"from"`
		To       string `json:"to"`
		PauseMS  int64  `json:"write_pause_ms"`
		Bytes    int64  `json:"dump_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &mv); err != nil || mv.From != defaultName || mv.To != secondName || mv.Database != db {
		t.Fatalf("db move answered %s (%v)", out, err)
	}
	// The writers' view of the pause: the longest stretch between two
	// acknowledged inserts (of any writer) while the move ran.
	times := slices.Clone(ackAt)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	after := 0
	for i, at := range times {
		if i > 0 && at.After(moveStart) && times[i-1].Before(moveEnd) {
			gap = max(gap, at.Sub(times[i-1]))
		}
		if at.After(moveEnd) {
			after++
		}
	}
	var fails []string
	nfail := 0
	for k, v := range failed {
		fails = append(fails, fmt.Sprintf("%d× %s", v, k))
		nfail += v
	}
	slices.Sort(fails)
	if len(acked) == 0 || after == 0 {
		t.Fatalf("%d inserts acknowledged, %d after the move ended: the writes did not resume (refused: %v)", len(acked), after, fails)
	}

	if c, _ := f.placement(t, db); c != secondName {
		t.Fatalf("after the move %s is placed on %q", db, c)
	}
	if !hasDatabase(t, f.PG2.Admin, pg) || hasDatabase(t, bitdtest.DatabaseURL(t), pg) {
		t.Fatalf("after the move %s (%s) is not on the second cluster only", db, pg)
	}
	have := map[int]bool{}
	res := sql(t, lb, key, db, "select id from w")
	rows, _ := res.Body["data"].([]any)
	for _, r := range rows {
		if row, ok := r.([]any); ok && len(row) == 1 {
			if v, ok := row[0].(float64); ok {
				have[int(v)] = true
			}
		}
	}
	missing := 0
	for _, id := range acked {
		if !have[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged inserts are missing after the move (%d rows present)", missing, len(acked), len(have))
	}
	// Every replica and the wire proxy reach the database on its new
	// cluster, and writes through each land there.
	port := f.portOf(t, secondName)
	for i, r := range f.Replicas {
		if got := scalar(sql(t, r.S.Endpoint, key, db, fmt.Sprintf("insert into w values (%d, -1) returning current_setting('port')", -(i+1)))); got != port {
			t.Fatalf("%s wrote to %s on port %s after the move, want %s (the second cluster)", r.Name, db, got, port)
		}
	}
	wc, err := wireConn(ctx, f.PG, db, key)
	if err != nil {
		t.Fatalf("wire session to %s through HAProxy after the move: %v", db, err)
	}
	defer wc.Close(context.Background())
	var n, keep int
	var p string
	if err := wc.QueryRow(ctx, "select (select count(*) from w), (select count(*) from keep), current_setting('port')").Scan(&n, &keep, &p); err != nil ||
		n != len(have)+replicaCount || keep != 1000 || p != port {
		t.Fatalf("wire session after the move: w %d rows (want %d), keep %d (want 1000), port %s (want %s), %v", n, len(have)+replicaCount, keep, p, port, err)
	}
	summary.move = fmt.Sprintf("db move under %d HTTP writers: %d acknowledged inserts all kept, write pause %d ms (bitd) / %d ms longest gap between acks",
		writers, len(acked), mv.PauseMS, gap.Round(time.Millisecond).Milliseconds())
	t.Logf("db move %s default → second in %v: bitd's write pause %d ms, dump %d bytes; writers: %d inserts acknowledged (all present, %d after the move), longest gap between acknowledged inserts during the move %v, %d refused or failed: %v",
		db, moveEnd.Sub(moveStart).Round(time.Millisecond), mv.PauseMS, mv.Bytes, len(acked), after, gap.Round(time.Millisecond), nfail, fails)
}
