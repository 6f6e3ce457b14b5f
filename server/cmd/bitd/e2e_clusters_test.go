package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// secondCluster starts a private PostgreSQL cluster for the test, locked
// down like the shared one (pgcluster's pg_hba.conf), whose admin "bitkit"
// has the shared cluster's admin password (bitd connects to every cluster
// with its own admin password when the URL carries none). It returns the
// cluster, its URL without password, and a restart function (same port).
func secondCluster(t *testing.T) (c *pgcluster.Cluster, urlNoPW string, restart func() *pgcluster.Cluster) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg2")
	logf := filepath.Join(filepath.Dir(dir), "pg2.log")
	c, err := pgcluster.Start(t.Context(), dir, logf)
	if err != nil {
		t.Fatalf("start the second cluster: %v", err)
	}
	cur := c
	t.Cleanup(func() { cur.Stop(30 * time.Second) })
	main, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := main.User.Password()
	admin, err := pgx.Connect(t.Context(), c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(t.Context(), "ALTER ROLE bitkit PASSWORD '"+strings.ReplaceAll(pw, "'", "''")+"'"); err != nil {
		t.Fatal(err)
	}
	admin.Close(t.Context())
	// pgcluster reads the admin password from DIR/.pwfile when it starts.
	if err := os.WriteFile(filepath.Join(dir, ".pwfile"), []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := c.Port
	restart = func() *pgcluster.Cluster {
		t.Helper()
		n, err := pgcluster.StartOnPort(t.Context(), dir, logf, port)
		if err != nil {
			t.Fatalf("restart the second cluster: %v", err)
		}
		cur = n
		return n
	}
	return c, fmt.Sprintf("postgres://bitkit@127.0.0.1:%d/postgres?sslmode=disable", port), restart
}

// placements reads name → placement of the live databases from the
// metadata store.
func placements(t *testing.T, s *bitdtest.Server) map[string]string {
	t.Helper()
	cfg, err := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = s.MetadataDB
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, _ := c.Query(t.Context(), `SELECT name, placement FROM databases WHERE deleted_at IS NULL`)
	out := map[string]string{}
	for rows.Next() {
		var n, p string
		if err := rows.Scan(&n, &p); err != nil {
			t.Fatal(err)
		}
		out[n] = p
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return out
}

// pgNameOf returns the PostgreSQL name of live database name.
func pgNameOf(t *testing.T, s *bitdtest.Server, name string) string {
	t.Helper()
	cfg, _ := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	cfg.Database = s.MetadataDB
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var pg string
	if err := c.QueryRow(t.Context(), `SELECT pg_name FROM databases WHERE name = $1 AND deleted_at IS NULL`, name).Scan(&pg); err != nil {
		t.Fatal(err)
	}
	return pg
}

// hasDatabase reports whether the cluster at adminURL has database pg.
func hasDatabase(t *testing.T, adminURL, pg string) bool {
	t.Helper()
	c, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, pg).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestClusters: databases are placed on two real clusters by the stated
// policy (fewest databases among active clusters), every path works on a
// database of each, a stopped cluster makes only its databases answer 503
// cluster_unavailable, everything recovers when it is back, and a database
// moves between clusters under a write load without losing an
// acknowledged write.
func TestClusters(t *testing.T) {
	c2, url2, restart := secondCluster(t)
	port2 := c2.Port
	admin2 := strings.Replace(url2, "bitkit@", "bitkit:"+url.QueryEscape(mustPassword(t))+"@", 1)
	// One secret for bitd, its replica and the admin commands (db move
	// provisions roles, whose passwords derive from it).
	var sb [32]byte
	_, _ = rand.Read(sb[:])
	t.Setenv("BITD_SECRET", hex.EncodeToString(sb[:]))
	s := bitdtest.Start(t, bitdtest.Args("--metrics", "127.0.0.1:0"), bitdtest.Env("BITD_SECRET="+hex.EncodeToString(sb[:])))
	key, user, E := s.APIKey, s.User, s.Endpoint

	// cluster add / list / drain.
	out := s.Admin(t, "cluster", "add", "second", url2)
	if !strings.Contains(out, `"added":"second"`) {
		t.Fatalf("cluster add: %s", out)
	}
	if _, err := s.AdminE(t.Context(), "cluster", "add", "second", url2); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("adding the cluster again: %v, want a clear refusal", err)
	}
	mainNoPW, _ := url.Parse(bitdtest.DatabaseURL(t))
	mainNoPW.User = url.User(mainNoPW.User.Username())
	for _, c := range []struct{ name, url, want string }{
		{"self", mainNoPW.String(), "default cluster itself"},
		{"wrongpw", strings.Replace(url2, "bitkit@", "bitkit:not-the-password@", 1), "differs from bitd's own admin password"},
		{"Bad Name", url2, "invalid cluster name"},
		{"nourl", "host=127.0.0.1", "must be a postgres://"},
	} {
		out, err := s.AdminE(t.Context(), "cluster", "add", c.name, c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("cluster add %s: %v (%s), want a refusal saying %q", c.name, err, out, c.want)
		}
		if strings.Contains(fmt.Sprint(err), mustPassword(t)) {
			t.Fatalf("cluster add %s echoed the admin password: %v", c.name, err)
		}
	}
	list := s.Admin(t, "cluster", "list")
	if !strings.Contains(list, `"name":"default"`) || !strings.Contains(list, `"name":"second"`) || strings.Contains(list, mustPassword(t)) {
		t.Fatalf("cluster list: %s", list)
	}

	// Placement: create until both clusters hold some.
	names := []string{"ca", "cb", "cc", "cd"}
	for _, n := range names {
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": n}), http.StatusCreated, "")
	}
	pl := placements(t, s)
	var onDefault, onSecond []string
	for _, n := range names {
		switch pl[n] {
		case "default":
			onDefault = append(onDefault, n)
		case "second":
			onSecond = append(onSecond, n)
		default:
			t.Fatalf("database %s placed on %q", n, pl[n])
		}
	}
	if len(onDefault) == 0 || len(onSecond) < 2 {
		t.Fatalf("placement by fewest databases put %v on default and %v on second (all: %v)", onDefault, onSecond, pl)
	}
	for _, n := range onSecond {
		pg := pgNameOf(t, s, n)
		if !hasDatabase(t, admin2, pg) || hasDatabase(t, bitdtest.DatabaseURL(t), pg) {
			t.Fatalf("database %s (%s) is not on the second cluster only", n, pg)
		}
	}
	dbA, dbB := user+"/"+onDefault[0], user+"/"+onSecond[0]

	// Every path on a database of each cluster.
	for _, db := range []string{dbA, dbB} {
		t.Logf("paths on %s (%s)", db, pl[strings.TrimPrefix(db, user+"/")])
		want(t, sqlAs(t, E, key, db, "CREATE TABLE t (id int PRIMARY KEY, v text)"), 200, "")
		want(t, sqlAs(t, E, key, db, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g"), 200, "")
		r := sqlAs(t, E, key, db, "SELECT count(*), current_database() FROM t")
		want(t, r, 200, "")
		if got := fmt.Sprint(r.Body["data"]); !strings.HasPrefix(got, "[[100 bk_") {
			t.Fatalf("%s: query answered %s", db, r.Raw)
		}
		st, lines := streamAs(t, E, key, db, "SELECT id FROM t ORDER BY id")
		if st != 200 || len(lines) < 100 {
			t.Fatalf("%s: NDJSON stream %d with %d lines", db, st, len(lines))
		}
		br := call(t, "POST", E+"/v2beta/query/batch/", key, map[string]any{"database_name": db,
			"queries": []map[string]any{{"query_string": "INSERT INTO t VALUES (1000, 'b')"}, {"query_string": "SELECT count(*) FROM t"}}})
		want(t, br, 200, "")
		if !strings.Contains(string(br.Raw), "101") {
			t.Fatalf("%s: batch answered %s", db, br.Raw)
		}
		job := importCSV(t, E, key, db, "imp", "id,name\n1,a\n2,b\n3,c\n")
		if job.Status != http.StatusAccepted && job.Status != http.StatusOK {
			t.Fatalf("%s: import answered %d: %s", db, job.Status, job.Raw)
		}
		if st := waitJob(t, key, job); st.str("state") != "DONE" {
			t.Fatalf("%s: import ended %s", db, st.Raw)
		}
		exp := call(t, "POST", E+"/v2beta/db/"+db+"/export/", key, map[string]any{"query_string": "SELECT id, name FROM imp ORDER BY id", "export_format": "csv"})
		want(t, exp, http.StatusAccepted, "")
		done := waitJob(t, key, exp)
		if done.str("state") != "DONE" {
			t.Fatalf("%s: export ended %s", db, done.Raw)
		}
		res, err := httpClient.Get(done.str("download_url"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != "id,name\n1,a\n2,b\n3,c\n" {
			t.Fatalf("%s: export downloaded %q", db, body)
		}
		wc := wireConn(t, s, key, db)
		var n int
		if err := wc.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 101 {
			t.Fatalf("%s: wire proxy count %d, %v", db, n, err)
		}
		if _, err := wc.Exec(t.Context(), "INSERT INTO t VALUES (2000, 'wire')"); err != nil {
			t.Fatalf("%s: wire proxy insert: %v", db, err)
		}
		wc.Close(t.Context())
	}

	// The pool metrics carry one cluster label per cluster.
	fams := scrape(t, s)
	for _, c := range []string{"default", "second"} {
		if n, ok := metric(fams, "bitd_pool_open", "cluster="+c); !ok || n < 1 {
			t.Errorf("bitd_pool_open{cluster=%q} = %v (%v), want at least one pool", c, n, ok)
		}
	}

	// Storage quota on the second cluster: freeze, then thaw.
	lim := s.Admin(t, "db", "limit", dbB, "1")
	if !strings.Contains(lim, `"writes_refused":true`) {
		t.Fatalf("db limit on the second cluster: %s", lim)
	}
	if r := sqlAs(t, E, key, dbB, "INSERT INTO t VALUES (3000, 'x')"); r.Status < 400 {
		t.Fatalf("a write to a frozen database on the second cluster answered %s", r.Raw)
	}
	if lim := s.Admin(t, "db", "limit", dbB, "0"); !strings.Contains(lim, `"writes_refused":false`) {
		t.Fatalf("db limit 0 on the second cluster: %s", lim)
	}
	want(t, sqlAs(t, E, key, dbB, "INSERT INTO t VALUES (3000, 'x')"), 200, "")

	// Delete on the second cluster: the physical database goes there.
	delName := onSecond[1]
	delPG := pgNameOf(t, s, delName)
	want(t, call(t, "DELETE", E+"/v2beta/db/"+user+"/"+delName, key, nil), 200, "")
	testwait.Eventually(t, 60*time.Second, func() error {
		if hasDatabase(t, admin2, delPG) {
			return fmt.Errorf("deleted database %s is still on the second cluster", delPG)
		}
		return nil
	})

	// Drain: no new database on the second cluster.
	s.Admin(t, "cluster", "drain", "second")
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "drained1"}), http.StatusCreated, "")
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "drained2"}), http.StatusCreated, "")
	if pl := placements(t, s); pl["drained1"] != "default" || pl["drained2"] != "default" {
		t.Fatalf("databases created while second drains were placed %q, %q", pl["drained1"], pl["drained2"])
	}
	s.Admin(t, "cluster", "activate", "second")

	// The second cluster stops: its databases answer 503 cluster_unavailable,
	// the default cluster's keep working.
	c2.Stop(30 * time.Second) // the pg_ctl stop -m fast equivalent, on this test's own cluster
	var down resp
	// A pooled connection may first report the shutdown itself.
	_ = testwait.Wait(t.Context(), 5*time.Second, func() error {
		down = sqlAs(t, E, key, dbB, "SELECT count(*) FROM t")
		if down.str("code") != "cluster_unavailable" {
			return fmt.Errorf("answer %s", down.Raw)
		}
		return nil
	})
	want(t, down, http.StatusServiceUnavailable, "cluster_unavailable")
	if !strings.Contains(down.str("error"), `"second"`) {
		t.Fatalf("the 503 does not name the cluster: %s", down.Raw)
	}
	want(t, sqlAs(t, E, key, dbA, "SELECT count(*) FROM t"), 200, "")
	if st, _ := streamAs(t, E, key, dbB, "SELECT 1"); st != http.StatusServiceUnavailable {
		t.Fatalf("NDJSON stream on the stopped cluster answered %d", st)
	}
	cfg, _ := pgx.ParseConfig("postgres://any@" + s.PGAddr + "/x?sslmode=require")
	cfg.Password, cfg.Database = key, dbB
	if wc, err := pgx.ConnectConfig(t.Context(), cfg); err == nil {
		wc.Close(t.Context())
		t.Fatal("a wire session to a database of the stopped cluster was accepted")
	} else if !strings.Contains(err.Error(), "08006") || !strings.Contains(err.Error(), `"second"`) {
		t.Fatalf("wire proxy on the stopped cluster: %v, want 08006 naming the cluster", err)
	}
	wc := wireConn(t, s, key, dbA)
	if _, err := wc.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatalf("wire proxy on the default cluster while the second is down: %v", err)
	}
	wc.Close(t.Context())
	// The policy would pick the second cluster (fewer databases): the
	// creation falls back to the default one instead of failing.
	if pl := placements(t, s); len(onSecond) >= countOn(pl, "default") {
		t.Fatalf("premise: the second cluster holds fewer databases than the default one: %v", pl)
	}
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "during_outage"}), http.StatusCreated, "")
	if p := placements(t, s)["during_outage"]; p != "default" {
		t.Fatalf("a database created while the second cluster is down was placed on %q", p)
	}

	// Back: everything recovers.
	restart()
	testwait.Eventually(t, 30*time.Second, func() error {
		if r := sqlAs(t, E, key, dbB, "SELECT count(*) FROM t"); r.Status != 200 {
			return fmt.Errorf("the second cluster's database did not recover: %s", r.Raw)
		}
		return nil
	})
	wc = wireConn(t, s, key, dbB)
	if _, err := wc.Exec(t.Context(), "INSERT INTO t VALUES (4000, 'back')"); err != nil {
		t.Fatalf("wire proxy after the restart: %v", err)
	}
	wc.Close(t.Context())

	// Move dbA (default) to the second cluster under a write load.
	want(t, sqlAs(t, E, key, dbA, "CREATE TABLE w (id int PRIMARY KEY)"), 200, "")
	var (
		mu    sync.Mutex
		acked []int
		fails int
	)
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": dbA, "query_string": fmt.Sprintf("INSERT INTO w VALUES (%d)", i)})
			mu.Lock()
			if r.Status == 200 {
				acked = append(acked, i)
			} else {
				fails++
			}
			mu.Unlock()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	moveOut := s.Admin(t, "db", "move", dbA, "second")
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-loadDone
	var mv struct {
		Database  string `json:"database"`
		From      string `json:"from"`
		To        string `json:"to"`
		PauseMS   int64  `json:"write_pause_ms"`
		DumpBytes int64  `json:"dump_bytes"`
	}
	if err := jsonx.Unmarshal([]byte(moveOut), &mv); err != nil || mv.From != "default" || mv.To != "second" {
		t.Fatalf("db move answered %s (%v)", moveOut, err)
	}
	mu.Lock()
	t.Logf("db move: write pause %d ms, dump %d bytes; %d writes acknowledged, %d refused during the load", mv.PauseMS, mv.DumpBytes, len(acked), fails)
	ackedCopy := append([]int(nil), acked...)
	mu.Unlock()
	if len(ackedCopy) == 0 {
		t.Fatal("no write was acknowledged during the move")
	}
	if pl := placements(t, s); pl[onDefault[0]] != "second" {
		t.Fatalf("after the move %s is placed on %q", dbA, pl[onDefault[0]])
	}
	pgA := pgNameOf(t, s, onDefault[0])
	if !hasDatabase(t, admin2, pgA) || hasDatabase(t, bitdtest.DatabaseURL(t), pgA) {
		t.Fatalf("after the move %s is not on the second cluster only", pgA)
	}
	r := sqlAs(t, E, key, dbA, "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM w")
	want(t, r, 200, "")
	have := map[int]bool{}
	if rows, _ := r.Body["data"].([]any); len(rows) == 1 {
		if ids, _ := rows[0].([]any)[0].([]any); ids != nil {
			for _, v := range ids {
				f, _ := v.(float64)
				have[int(f)] = true
			}
		}
	}
	for _, id := range ackedCopy {
		if !have[id] {
			t.Fatalf("acknowledged write %d is missing after the move (%d acknowledged, %d present)", id, len(ackedCopy), len(have))
		}
	}
	// The rest of the moved database, its keys and its paths.
	if r := sqlAs(t, E, key, dbA, "SELECT count(*) FROM t"); fmt.Sprint(r.Body["data"]) != "[[102]]" {
		t.Fatalf("moved table t: %s", r.Raw)
	}
	wc = wireConn(t, s, key, dbA)
	if _, err := wc.Exec(t.Context(), "INSERT INTO w VALUES (-1)"); err != nil {
		t.Fatalf("wire proxy after the move: %v", err)
	}
	wc.Close(t.Context())

	// Another replica starting now (no cache, no pool) finds both
	// clusters, checks the second one's lock-down at start-up, and routes
	// as the first does.
	b := bitdtest.Start(t, bitdtest.Replica(s))
	if !strings.Contains(b.Logs(), "refuses tenant roles at 127.0.0.1:"+strconv.Itoa(port2)) {
		t.Errorf("the replica's start-up did not check the second cluster's lock-down; log:\n%s", b.Logs())
	}
	for _, db := range []string{dbA, dbB} {
		if r := sqlAs(t, b.Endpoint, key, db, "SELECT count(*) FROM t"); r.Status != 200 {
			t.Fatalf("%s through another replica: %s", db, r.Raw)
		}
	}

	// --ephemeral drops the databases and roles on every cluster.
	b.Stop(t)
	s.Stop(t)
	c, err := pgx.Connect(t.Context(), admin2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var dbs, roles int
	if err := c.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE 'bk\_%'),
		(SELECT count(*) FROM pg_roles WHERE rolname LIKE 'bk\_%')`).Scan(&dbs, &roles); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || roles != 0 {
		t.Errorf("after an --ephemeral bitd stopped, the second cluster holds %d platform databases and %d roles", dbs, roles)
	}
}

// mustPassword is the shared cluster's admin password (never printed by
// cluster list).
func mustPassword(t *testing.T) string {
	u, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return pw
}

// countOn counts the databases of pl placed on cluster.
func countOn(pl map[string]string, cluster string) int {
	n := 0
	for _, p := range pl {
		if p == cluster {
			n++
		}
	}
	return n
}

// stockOn lists the ready stocked databases per cluster.
func stockOn(t *testing.T, meta *pgx.Conn) map[string][]string {
	t.Helper()
	rows, err := meta.Query(t.Context(), `SELECT placement, pg_name FROM db_stock WHERE ready ORDER BY placement, pg_name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var p, n string
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		out[p] = append(out[p], n)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return out
}

// connectOn connects as the admin to database db of the cluster at adminURL.
func connectOn(t *testing.T, adminURL, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = db
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// roleExists reports whether the cluster at adminURL has role r.
func roleExists(t *testing.T, adminURL, r string) bool {
	t.Helper()
	c := connectOn(t, adminURL, "postgres")
	var ok bool
	if err := c.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, r).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	c.Close(t.Context())
	return ok
}

// dropPublicRole removes the public readers' role of platform database pg
// on the cluster at adminURL, as an older bitd (or a failed back-fill)
// would have left it.
func dropPublicRole(t *testing.T, adminURL, pg string) {
	t.Helper()
	c := connectOn(t, adminURL, pg)
	if _, err := c.Exec(t.Context(), fmt.Sprintf(`DROP OWNED BY %s; DROP ROLE %[1]s`, pgx.Identifier{pg + "_public"}.Sanitize())); err != nil {
		t.Fatalf("drop the public role of %s: %v", pg, err)
	}
	c.Close(t.Context())
}

// clusterUpMetric reads bitd_cluster_up{cluster} from a scrape.
func clusterUpMetric(t *testing.T, s *bitdtest.Server, cluster string) (float64, bool) {
	t.Helper()
	return metric(scrape(t, s), "bitd_cluster_up", "cluster="+cluster)
}

// TestClusterOperations: with two real clusters, each active cluster keeps
// its own database stock and a creation takes from the stock of the
// cluster placement chose; each cluster has its own connection budget (a
// full second cluster refuses its own databases' connections with 53300
// while the default cluster's still get theirs); an unrecorded database
// left on the second cluster by an interrupted provisioning is dropped
// there; the start-up repairs run on the second cluster (a missing public
// readers' role comes back, a deleted database left there is dropped),
// and when that cluster is down at start-up bitd still starts, says so, and
// repairs it once it is back; bitd_cluster_up and `admin cluster list`
// follow the cluster going down and coming back.
func TestClusterOperations(t *testing.T) {
	c2, url2, restart := secondCluster(t)
	admin2 := strings.Replace(url2, "bitkit@", "bitkit:"+url.QueryEscape(mustPassword(t))+"@", 1)
	s := bitdtest.Start(t, bitdtest.Args("--metrics", "127.0.0.1:0", "--db-stock", "2", "--db-stock-max", "2",
		"--max-backend-conns", "3"))
	key, user, E := s.APIKey, s.User, s.Endpoint
	meta := clusterConn(t, s.MetadataDB)
	if out := s.Admin(t, "cluster", "add", "second", url2); !strings.Contains(out, `"added":"second"`) {
		t.Fatalf("cluster add: %s", out)
	}

	// A stock on each cluster, once the store has had a database.
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "s0"}), http.StatusCreated, "")
	stockFull := func() bool { st := stockOn(t, meta); return len(st["default"]) == 2 && len(st["second"]) == 2 }
	waitFor(t, 90*time.Second, "a stock of 2 on both clusters", stockFull)
	// Each creation takes a stocked database of the cluster placement chose.
	for _, n := range []string{"s1", "s2", "s3"} {
		waitFor(t, 90*time.Second, "the stocks to refill to 2", stockFull)
		before := stockOn(t, meta)
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": n}), http.StatusCreated, "")
		p, pg := placements(t, s)[n], pgNameOf(t, s, n)
		if !slices.Contains(before[p], pg) {
			t.Fatalf("%s was placed on %q as %s, not one of that cluster's stocked databases %v (stock: %v)", n, p, pg, before[p], before)
		}
	}
	waitFor(t, 90*time.Second, "the stocks to refill to 2 after the creations", stockFull)
	pl := placements(t, s)
	var onSecond []string
	for _, n := range []string{"s1", "s2", "s3"} {
		if pl[n] == "second" {
			onSecond = append(onSecond, n)
		}
	}
	if pl["s0"] != "default" || len(onSecond) != 2 {
		t.Fatalf("placement by fewest databases: %v", pl)
	}
	for _, st := range stockOn(t, meta)["second"] {
		if !hasDatabase(t, admin2, st) || hasDatabase(t, bitdtest.DatabaseURL(t), st) {
			t.Fatalf("stocked database %s of the second cluster is not there only", st)
		}
	}
	dbA, dbB, dbB2 := user+"/s0", user+"/"+onSecond[0], user+"/"+onSecond[1]
	pgB, pgB2 := pgNameOf(t, s, onSecond[0]), pgNameOf(t, s, onSecond[1])

	// The connection budget is per cluster (3 each here): three wire
	// sessions fill the second cluster's, a fourth is refused there, the
	// default cluster's databases still get connections.
	var sessions []*pgx.Conn
	for range 3 {
		sessions = append(sessions, wireConn(t, s, key, dbB))
	}
	wcfg, _ := pgx.ParseConfig("postgres://any@" + s.PGAddr + "/x?sslmode=require")
	wcfg.Password, wcfg.Database = key, dbB
	if c, err := pgx.ConnectConfig(t.Context(), wcfg); err == nil {
		c.Close(t.Context())
		t.Fatal("a fourth wire session to the full second cluster was accepted")
	} else if !strings.Contains(err.Error(), "53300") {
		t.Fatalf("a fourth wire session to the full second cluster: %v, want FATAL 53300", err)
	}
	wa := wireConn(t, s, key, dbA)
	if _, err := wa.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatalf("a wire session to the default cluster while the second is full: %v", err)
	}
	want(t, sqlAs(t, E, key, dbA, "SELECT 1"), 200, "")
	fams := scrape(t, s)
	if n, _ := metric(fams, "bitd_connection_budget", "cluster=second", "state=in_use"); n != 3 {
		t.Errorf("bitd_connection_budget{cluster=second,state=in_use} = %v, want 3", n)
	}
	if n, _ := metric(fams, "bitd_connection_budget", "cluster=second", "state=max"); n != 3 {
		t.Errorf("bitd_connection_budget{cluster=second,state=max} = %v, want 3", n)
	}
	wa.Close(t.Context())
	for _, c := range sessions {
		c.Close(t.Context())
	}
	testwait.Eventually(t, 30*time.Second, func() error {
		c, err := pgx.ConnectConfig(t.Context(), wcfg)
		if err != nil {
			return fmt.Errorf("a wire session to the second cluster once the others closed: %v", err)
		}
		c.Close(t.Context())
		return nil
	})

	// An unrecorded database on the second cluster, as a bitd killed
	// between provisioning it and recording it leaves: its db_stock row
	// (not ready, not locked), its database and a role. The stock's
	// clean-up drops them there.
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	left := "bk_" + hex.EncodeToString(rb[:])
	a2 := connectOn(t, admin2, "postgres")
	for _, q := range []string{"CREATE DATABASE " + left, "CREATE ROLE " + left + "_owner LOGIN"} {
		if _, err := a2.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := meta.Exec(t.Context(), `INSERT INTO db_stock (pg_name, stock_key, placement, created_at)
		VALUES ($1, 'crashed', 'second', now() - interval '1 minute')`, left); err != nil {
		t.Fatal(err)
	}
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "kick"}), http.StatusCreated, "") // wakes the stock
	waitFor(t, 90*time.Second, "the unrecorded database on the second cluster to be dropped", func() bool {
		return !hasDatabase(t, admin2, left) && !roleExists(t, admin2, left+"_owner")
	})
	var rowsLeft int
	if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM db_stock WHERE pg_name = $1`, left).Scan(&rowsLeft); err != nil || rowsLeft != 0 {
		t.Fatalf("the leftover's db_stock row: %d (%v)", rowsLeft, err)
	}

	// Start-up repairs on the second cluster: a missing public readers'
	// role, and a deleted database whose drop did not happen there.
	dropPublicRole(t, admin2, pgB)
	if _, err := meta.Exec(t.Context(), `UPDATE databases SET deleted_at = now(), dropped_at = now() WHERE pg_name = $1`, pgB2); err != nil {
		t.Fatal(err)
	}
	s.Restart(t, syscall.SIGKILL) // SIGTERM would run the --ephemeral clean-up
	if !roleExists(t, admin2, pgB+"_public") {
		t.Errorf("after a restart the public readers' role of %s (second cluster) is still missing; log:\n%s", dbB, s.Logs())
	}
	if hasDatabase(t, admin2, pgB2) {
		t.Errorf("after a restart the deleted database %s is still on the second cluster", dbB2)
	}
	if v, ok := clusterUpMetric(t, s, "second"); !ok || v != 1 {
		t.Fatalf("bitd_cluster_up{cluster=second} = %v (%v), want 1", v, ok)
	}
	if v, ok := clusterUpMetric(t, s, "default"); !ok || v != 1 {
		t.Fatalf("bitd_cluster_up{cluster=default} = %v (%v), want 1", v, ok)
	}

	// The second cluster stops: cluster_up goes to 0 and cluster list
	// says it is down; a bitd starting meanwhile starts, names the
	// cluster, and repairs it once it is back; cluster_up goes back to 1.
	dropPublicRole(t, admin2, pgB)
	c2.Stop(30 * time.Second)
	testwait.Eventually(t, 30*time.Second, func() error {
		if v, _ := clusterUpMetric(t, s, "second"); v != 0 {
			return fmt.Errorf("bitd_cluster_up{cluster=second} = %v with the cluster stopped", v)
		}
		return nil
	})
	if v, _ := clusterUpMetric(t, s, "default"); v != 1 {
		t.Fatalf("bitd_cluster_up{cluster=default} = %v while only the second cluster is down", v)
	}
	list := s.Admin(t, "cluster", "list")
	if !strings.Contains(list, `"name":"second"`) || !regexp.MustCompile(`"name":"second"[^}]*"up":false,"down_cause":"[^"]+"`).MatchString(list) ||
		!regexp.MustCompile(`"name":"default"[^}]*"up":true`).MatchString(list) {
		t.Fatalf("cluster list with the second cluster stopped: %s", list)
	}
	s.Restart(t, syscall.SIGKILL)
	if !strings.Contains(s.Logs(), `cluster=second`) || !strings.Contains(s.Logs(), "its start-up repairs run once it answers") {
		t.Fatalf("bitd started with the second cluster down without a warning naming it; log:\n%s", s.Logs())
	}
	want(t, sqlAs(t, s.Endpoint, key, dbA, "SELECT 1"), 200, "")
	restart()
	testwait.Eventually(t, 30*time.Second, func() error {
		if v, _ := clusterUpMetric(t, s, "second"); v != 1 {
			return fmt.Errorf("bitd_cluster_up{cluster=second} = %v after the cluster came back", v)
		}
		return nil
	})
	// The background pass (every 30 s) runs the repairs that waited.
	waitFor(t, 120*time.Second, "the public readers' role repaired on the second cluster once it is back", func() bool {
		return roleExists(t, admin2, pgB+"_public")
	})
	want(t, sqlAs(t, s.Endpoint, key, dbB, "SELECT 1"), 200, "")
}
