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
	"strconv"
	"strings"
	"sync"
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
	for i := 0; i < 5; i++ { // a pooled connection may first report the shutdown itself
		down = sqlAs(t, E, key, dbB, "SELECT count(*) FROM t")
		if down.str("code") == "cluster_unavailable" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
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
