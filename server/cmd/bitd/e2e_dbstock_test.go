package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// post sends a JSON request without failing the test (for goroutines): the
// status, or 0 and the error when no answer came.
func post(ctx context.Context, method, url, key string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := jsonx.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// useDatabase proves database full (account/name) works at once for its
// owner: a table written over HTTP, read back through the wire proxy.
func useDatabase(ctx context.Context, s *bitdtest.Server, key, full string) error {
	st, raw, err := post(ctx, "POST", s.Endpoint+"/v2beta/query", key, map[string]any{"database_name": full,
		"query_string": "CREATE TABLE IF NOT EXISTS t (v text); INSERT INTO t VALUES ('" + full + "')"})
	if err != nil || st != 200 {
		return fmt.Errorf("HTTP write to %s: %d %s %v", full, st, raw, err)
	}
	cfg, err := pgx.ParseConfig("postgres://any@" + s.PGAddr + "/x?sslmode=require")
	if err != nil {
		return err
	}
	cfg.Password, cfg.Database = key, full
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("wire connect to %s: %w", full, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	var n int
	var owner string
	if err := c.QueryRow(ctx, "SELECT count(*), max(pg_get_userbyid(c.relowner)) FROM t, pg_class c WHERE c.relname = 't' AND v = $1", full).Scan(&n, &owner); err != nil || n < 1 {
		return fmt.Errorf("wire read of %s: %d rows, %v", full, n, err)
	}
	if !strings.HasSuffix(owner, "_owner") {
		return fmt.Errorf("table of %s belongs to %q, not the database's owner role", full, owner)
	}
	return nil
}

// clusterConn connects to the test cluster as its superuser, to database db
// ("" = the maintenance database).
func clusterConn(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if db != "" {
		cfg.Database = db
	}
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// pgObjects lists the platform databases (bk_…) and the platform roles'
// base names on the cluster.
func pgObjects(t *testing.T, admin *pgx.Conn) map[string]bool {
	t.Helper()
	rows, err := admin.Query(t.Context(), `SELECT datname FROM pg_database WHERE datname LIKE 'bk\_%'
		UNION SELECT substring(rolname from '^(bk_[0-9a-f]+)') FROM pg_roles WHERE rolname LIKE 'bk\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// knownAnywhere reports which of names some metadata store on the cluster
// knows (databases or db_stock): the cluster is shared by other tests'
// bitds, whose databases are not orphans.
func knownAnywhere(t *testing.T, admin *pgx.Conn, names []string) map[string]bool {
	t.Helper()
	rows, err := admin.Query(t.Context(), `SELECT datname FROM pg_database WHERE datname NOT LIKE 'bk\_%' AND datallowconn AND NOT datistemplate`)
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, db := range dbs {
		cfg, _ := pgx.ParseConfig(bitdtest.DatabaseURL(t))
		cfg.Database = db
		c, err := pgx.ConnectConfig(t.Context(), cfg)
		if err != nil {
			continue // dropped meanwhile
		}
		// Each table on its own: a metadata store of an older schema has
		// no db_stock, and most databases here are no metadata store.
		for _, q := range []string{`SELECT pg_name FROM databases WHERE pg_name = ANY($1)`, `SELECT pg_name FROM db_stock WHERE pg_name = ANY($1)`} {
			rows, err := c.Query(t.Context(), q, names)
			if err != nil {
				continue
			}
			found, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, f := range found {
				known[f] = true
			}
		}
		c.Close(t.Context())
	}
	return known
}

// checkNoOrphans fails when a platform database or role that appeared since
// before (and is still there) is known to no metadata store, after giving
// provisionings under way elsewhere time to record theirs.
func checkNoOrphans(t *testing.T, admin *pgx.Conn, before map[string]bool) {
	t.Helper()
	// A database being dropped in the background is still in pg_database
	// for a moment after its row is gone: a suspect must stay one for a
	// while before it counts.
	err := testwait.Wait(t.Context(), 9*time.Second, func() error {
		now := pgObjects(t, admin)
		var fresh []string
		for n := range now {
			if !before[n] {
				fresh = append(fresh, n)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		known := knownAnywhere(t, admin, fresh)
		still := pgObjects(t, admin)
		var suspects []string
		for _, n := range fresh {
			if !known[n] && still[n] {
				suspects = append(suspects, n)
			}
		}
		if len(suspects) > 0 {
			return fmt.Errorf("platform databases or roles known to no metadata store (orphans): %v", suspects)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestCreateDatabasesConcurrentlyAndCrash: 50 creators at once, each
// database used at once over HTTP and the wire proxy; then 50 more while
// bitd is SIGKILLed mid-way: after the restart every creation answered 201
// exists and works, names are not duplicated, the stock refills, and no
// PostgreSQL database or role is left that the store does not know.
func TestCreateDatabasesConcurrentlyAndCrash(t *testing.T) {
	t.Parallel()
	admin := clusterConn(t, "")
	before := pgObjects(t, admin)
	s := bitdtest.Start(t, bitdtest.Args("--db-stock", "6"))
	key, user := s.APIKey, s.User
	meta := clusterConn(t, s.MetadataDB)

	create := func(ctx context.Context, name string) (int, error) {
		st, raw, err := post(ctx, "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": name})
		if err != nil {
			return 0, err
		}
		if st != 201 {
			return st, fmt.Errorf("create %s: %d %s", name, st, raw)
		}
		return st, useDatabase(ctx, s, key, user+"/"+name)
	}

	// Round 1: 50 at once, nothing killed.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := create(t.Context(), fmt.Sprintf("a%02d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	// The stock refills after the burst.
	waitFor(t, 60*time.Second, "the stock to refill to 6", func() bool {
		var n int
		_ = meta.QueryRow(t.Context(), `SELECT count(*) FROM db_stock WHERE ready`).Scan(&n)
		return n >= 6
	})

	// Round 2: 50 at once, bitd SIGKILLed after the 15th answer.
	var (
		mu       sync.Mutex
		answered = map[string]bool{} // 201 received
		count    atomic.Int32
		killOnce sync.Once
		killed   = make(chan struct{})
	)
	kill := func() {
		killOnce.Do(func() {
			_ = syscall.Kill(s.Pid(), syscall.SIGKILL)
			close(killed)
		})
	}
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("b%02d", i)
			st, raw, err := post(t.Context(), "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": name})
			if err == nil && st == 201 {
				mu.Lock()
				answered[name] = true
				mu.Unlock()
				if count.Add(1) == 15 {
					kill()
				}
			} else if err == nil && st != 201 {
				select {
				case <-killed:
				default:
					t.Errorf("create %s before the kill: %d %s", name, st, raw)
				}
			}
		}()
	}
	wg.Wait()
	kill() // in case fewer than 15 answered
	if len(answered) == 50 {
		t.Log("every creation answered before the kill: nothing was in flight")
	}
	t.Logf("%d of 50 creations answered 201 before bitd was killed", len(answered))
	var interrupted int
	if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM db_stock WHERE NOT ready`).Scan(&interrupted); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d provisionings were under way when bitd was killed", interrupted)
	s.Restart(t, syscall.SIGKILL) // already dead: starts it again

	// Every 201 exists and works; the others exist (and work) or can be
	// created now; no name is live twice.
	for i := range 50 {
		name := fmt.Sprintf("b%02d", i)
		full := user + "/" + name
		if answered[name] {
			if err := useDatabase(t.Context(), s, key, full); err != nil {
				t.Errorf("a creation answered 201 before the crash does not work after it: %v", err)
			}
			continue
		}
		st, raw, err := post(t.Context(), "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": name})
		switch {
		case err != nil:
			t.Errorf("create %s after the restart: %v", name, err)
		case st == 201 || st == 409 && strings.Contains(string(raw), `"conflict"`):
			if err := useDatabase(t.Context(), s, key, full); err != nil {
				t.Error(err)
			}
		default:
			t.Errorf("create %s after the restart: %d %s", name, st, raw)
		}
	}
	var dup int
	if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT lower(name) FROM databases WHERE deleted_at IS NULL
		GROUP BY account_id, lower(name) HAVING count(*) > 1) x`).Scan(&dup); err != nil || dup != 0 {
		t.Errorf("duplicated live names: %d (%v)", dup, err)
	}
	var live int
	if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM databases WHERE deleted_at IS NULL`).Scan(&live); err != nil || live != 100 {
		t.Errorf("live databases after the restart: %d, want 100 (%v)", live, err)
	}
	// What the crash left half-provisioned is reclaimed (rows neither
	// ready nor locked, after orphanAge); every stocked and live database
	// has its PostgreSQL database.
	waitFor(t, 90*time.Second, "rows of interrupted provisionings reclaimed", func() bool {
		var n int
		_ = meta.QueryRow(t.Context(), `SELECT count(*) FROM db_stock WHERE NOT ready AND created_at < now() - interval '30 seconds'`).Scan(&n)
		return n == 0
	})
	rows, err := meta.Query(t.Context(), `SELECT pg_name FROM databases WHERE deleted_at IS NULL UNION ALL SELECT pg_name FROM db_stock WHERE ready`)
	if err != nil {
		t.Fatal(err)
	}
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var missing int
	if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM unnest($1::text[]) n WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = n)`, known).Scan(&missing); err != nil || missing != 0 {
		t.Errorf("%d databases the store knows have no PostgreSQL database (%v)", missing, err)
	}
	checkNoOrphans(t, admin, before)
	if strings.Contains(s.Logs(), "level=ERROR") {
		t.Errorf("bitd logged errors:\n%s", s.Logs())
	}

	// --ephemeral drops the stock with everything else.
	rows, err = meta.Query(t.Context(), `SELECT pg_name FROM db_stock`)
	if err != nil {
		t.Fatal(err)
	}
	stocked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(stocked) == 0 {
		t.Fatalf("premise: a stock to drop: %v %v", stocked, err)
	}
	meta.Close(t.Context())
	s.Stop(t)
	var left int
	if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, stocked).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d stocked databases left after an --ephemeral bitd stopped (%v)", left, err)
	}
}

// TestDeleteDatabaseInBackground: a delete answers without waiting for the
// drop, the name is reserved per --name-reservation and `bitd admin db
// release` frees it; the PostgreSQL database is gone after the background
// drop, also when bitd is SIGKILLed between the answer and the drop.
func TestDeleteDatabaseInBackground(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--name-reservation", "1h", "--db-stock", "0"))
	key, user := s.APIKey, s.User
	admin := clusterConn(t, "")
	meta := clusterConn(t, s.MetadataDB)
	pgNameOf := func(name string) string {
		var n string
		if err := meta.QueryRow(t.Context(), `SELECT pg_name FROM databases WHERE name = $1 ORDER BY created_at DESC LIMIT 1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exists := func(pgName string) bool {
		var n int
		if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = $1`, pgName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": "gone"}), 201, "")
	c := wireConn(t, s, key, user+"/gone")
	pg := pgNameOf("gone")
	want(t, call(t, "DELETE", s.Endpoint+"/v2beta/db/"+user+"/gone", key, nil), 200, "")
	if _, err := c.Exec(t.Context(), "SELECT 1"); err == nil {
		t.Error("the wire session survived the delete")
	}
	waitFor(t, 30*time.Second, "the background drop", func() bool { return !exists(pg) })
	// The reaper records dropped_at once the DROP has returned, a moment
	// after the database is gone from pg_database.
	waitFor(t, 30*time.Second, "dropped_at recorded", func() bool {
		var dropped bool
		if err := meta.QueryRow(t.Context(), `SELECT dropped_at IS NOT NULL FROM databases WHERE pg_name = $1`, pg).Scan(&dropped); err != nil {
			t.Fatal(err)
		}
		return dropped
	})
	r := call(t, "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": "gone"})
	want(t, r, 409, "name_reserved")
	m := regexp.MustCompile(`reserved until (\S+Z)`).FindStringSubmatch(r.str("error"))
	if m == nil {
		t.Fatalf("the reservation message lacks its end: %s", r.Raw)
	}
	if until, err := time.Parse(time.RFC3339, m[1]); err != nil || time.Until(until) < 50*time.Minute || time.Until(until) > 61*time.Minute {
		t.Errorf("reservation of an hour (--name-reservation 1h) expected: %s", r.Raw)
	}
	out := s.Admin(t, "db", "release", user+"/gone")
	if !strings.Contains(out, `"released"`) {
		t.Errorf("db release said %s", out)
	}
	if _, err := s.AdminE(t.Context(), "db", "release", user+"/gone"); err == nil || !strings.Contains(err.Error(), "is not reserved") {
		t.Errorf("releasing a name twice: %v", err)
	}
	want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": "gone"}), 201, "")
	if err := useDatabase(t.Context(), s, key, user+"/gone"); err != nil {
		t.Fatal(err)
	}

	// SIGKILL between the answer and the drop: a key-share lock on the row
	// lets the delete mark it but keeps the reaper (FOR UPDATE SKIP
	// LOCKED) off it until bitd is dead.
	pg = pgNameOf("gone")
	tx, err := meta.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM databases WHERE pg_name = $1 FOR KEY SHARE`, pg); err != nil {
		t.Fatal(err)
	}
	want(t, call(t, "DELETE", s.Endpoint+"/v2beta/db/"+user+"/gone", key, nil), 200, "")
	time.Sleep(500 * time.Millisecond) // the reaper's pass, which must skip the row
	if !exists(pg) {
		t.Fatal("premise: the drop was to be held back by the test's lock")
	}
	// bitd dies while the row is still held, so it never drops it.
	pid := s.Pid()
	_ = syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "bitd to die", func() bool { return syscall.Kill(pid, 0) != nil })
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !exists(pg) {
		t.Fatal("premise: the database was to outlive bitd")
	}
	s.Restart(t, syscall.SIGKILL) // already dead: starts it again
	waitFor(t, 30*time.Second, "the drop after the restart", func() bool { return !exists(pg) })

	// --name-reservation 0 (bitd dev's default): a deleted name is free at once.
	s2 := bitdtest.Start(t, bitdtest.Args("--db-stock", "0"))
	want(t, call(t, "POST", s2.Endpoint+"/v2beta/db/", s2.APIKey, map[string]any{"name": "again"}), 201, "")
	want(t, call(t, "DELETE", s2.Endpoint+"/v2beta/db/"+s2.User+"/again", s2.APIKey, nil), 200, "")
	want(t, call(t, "POST", s2.Endpoint+"/v2beta/db/", s2.APIKey, map[string]any{"name": "again"}), 201, "")
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, limit, func() error {
		if !cond() {
			return errors.New("waiting for " + what)
		}
		return nil
	})
}

// TestStockFollowsBursts: on a real bitd, a burst of creations larger
// than the stock raises the stock target (each creation that found the
// stock empty adds one) up to --db-stock-max, and the stock grows to it and
// no further; a second burst of that size is then served from the stock
// (every one of its databases was a stocked one).
func TestStockFollowsBursts(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--db-stock", "2", "--db-stock-max", "8"))
	key := s.APIKey
	meta := clusterConn(t, s.MetadataDB)
	ready := func() (n int) {
		if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM db_stock WHERE ready`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	burst := func(prefix string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				name := fmt.Sprintf("%s%02d", prefix, i)
				if st, raw, err := post(t.Context(), "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": name}); err != nil || st != 201 {
					errs <- fmt.Errorf("create %s: %d %s %v", name, st, raw, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	if st, raw, err := post(t.Context(), "POST", s.Endpoint+"/v2beta/db/", key, map[string]any{"name": "first"}); err != nil || st != 201 {
		t.Fatalf("create first: %d %s %v", st, raw, err)
	}
	waitFor(t, 60*time.Second, "the stock to fill to 2", func() bool { return ready() == 2 })
	burst("a", 16)
	var target int
	if err := meta.QueryRow(t.Context(), `SELECT target FROM db_stock_targets WHERE placement = 'default'`).Scan(&target); err != nil || target != 8 {
		t.Fatalf("stock target after a burst of 16 against a stock of 2: %d (%v), want the maximum 8", target, err)
	}
	waitFor(t, 120*time.Second, "the stock to grow to 8", func() bool { return ready() == 8 })
	rows, err := meta.Query(t.Context(), `SELECT pg_name FROM db_stock WHERE ready`)
	if err != nil {
		t.Fatal(err)
	}
	stocked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// The second burst of 8 takes the 8 stocked databases.
	burst("b", 8)
	var fromStock int
	if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM databases WHERE name LIKE 'b%' AND pg_name = ANY($1)`, stocked).Scan(&fromStock); err != nil || fromStock != 8 {
		t.Fatalf("%d of the second burst's 8 databases came from the stock (%v), want 8", fromStock, err)
	}
	waitFor(t, 120*time.Second, "the stock to refill to 8", func() bool { return ready() == 8 })
	var total int
	if err := meta.QueryRow(t.Context(), `SELECT count(*) FROM db_stock`).Scan(&total); err != nil || total != 8 {
		t.Fatalf("the stock holds %d rows (%v), want no more than the target 8", total, err)
	}
}
