package stress

// Storage quotas: a tenant fills its database past a small
// storage_limit_bytes through the HTTP API, the wire proxy and an import;
// once bitd's pass has frozen it, every way of writing more from SQL is
// tried and fails, reads and deletes keep working, and TRUNCATE or DELETE
// brings it back under the limit so that writes resume.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// quotaFill grows a table by about 6 MB in one statement.
const quotaFill = "INSERT INTO big SELECT repeat('x', 1000) FROM generate_series(1, 6000)"

// quotaEscapes are the statements a tenant tries to write more with once
// its database is frozen; each must fail (none may add a row to big or
// create anything).
var quotaEscapes = []string{
	"INSERT INTO big VALUES ('plain')",
	"UPDATE big SET v = v || 'more'",
	"SET default_transaction_read_only = off; INSERT INTO big VALUES ('set')",
	"SET session_replication_role = replica",
	"BEGIN READ WRITE; INSERT INTO big VALUES ('rw'); COMMIT",
	"SELECT sneak()", // SECURITY DEFINER, created before the freeze
	"GRANT INSERT ON big TO CURRENT_USER; INSERT INTO big VALUES ('granted')",
	"SET ROLE bitkit_tenants; INSERT INTO big VALUES ('group')", // the owner granted it INSERT before the freeze
	"ALTER TABLE big OWNER TO CURRENT_USER",
	"DO $$BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO CURRENT_USER', current_database()); END$$",
	"DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = off', current_database()); END$$",
	"ALTER ROLE CURRENT_USER CREATEDB",
	"CREATE OR REPLACE FUNCTION sneak() RETURNS void LANGUAGE sql AS 'SELECT'",
	"COPY big FROM PROGRAM 'echo x'",
	"SELECT lo_create(0)",
	"SELECT lo_from_bytea(0, 'large object')",
	"CREATE TEMP TABLE tmp AS SELECT 1 AS v",
	"CREATE TABLE other (v text)",
	"CREATE SCHEMA elsewhere",
	"CREATE MATERIALIZED VIEW mv AS SELECT * FROM big",
}

func TestAttackQuota(t *testing.T) {
	t.Parallel()
	s := startScanned(t, bitdtest.Args("--storage-check-interval", "300ms"))
	needWire(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "quota"+randSuffix(), true)
	c.mustQuery(t, db, "CREATE TABLE big (v text); CREATE TABLE dropme (v text); GRANT INSERT ON big TO bitkit_tenants; "+
		"CREATE FUNCTION sneak() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$INSERT INTO big VALUES ('definer')$$")
	usage := func() int64 {
		r := c.do(t, "GET", "/v2beta/db/"+db, nil)
		n, _ := r.Body["storage_usage_bytes"].(float64)
		if r.Status != 200 || n <= 0 {
			t.Fatalf("GET %s: %d %s", db, r.Status, r.Raw)
		}
		return int64(n)
	}
	limit := usage() + 3<<20
	s.Admin(t, "db", "limit", db, strconv.FormatInt(limit, 10))
	if r := c.do(t, "PATCH", "/v2beta/db/"+db, map[string]any{"storage_limit_bytes": limit * 2}); r.Status != http.StatusForbidden {
		t.Fatalf("the owner raises its own limit through the API: %d %s; want 403", r.Status, r.Raw)
	}
	record(t, "owner raises its own storage_limit_bytes with PATCH", "403: only lowering is allowed through the API")

	// 1. HTTP: one statement takes it past the limit (the overshoot the
	// pass allows), then writes are refused.
	c.mustQuery(t, db, quotaFill)
	over := usage()
	r := waitFrozenHTTP(t, c, db)
	if !strings.Contains(r.str("error"), strconv.FormatInt(limit, 10)) || !strings.Contains(r.str("error"), "TRUNCATE") {
		t.Errorf("the refusal does not name the limit and the way back: %s", r.Raw)
	}
	record(t, fmt.Sprintf("fill past a %d-byte limit through HTTP (one INSERT of ~6 MB; %d bytes after it)", limit, over),
		fmt.Sprintf("frozen by the next pass: INSERT answers %d %s, naming the limit and how to get back under it", r.Status, r.str("code")))
	rows := countBig(t, c, db)
	for _, q := range quotaEscapes {
		if r := c.query(t, db, q); r.Status == 200 {
			t.Errorf("HTTP, frozen database: %q answered 200", q)
		}
	}
	if n := countBig(t, c, db); n != rows {
		t.Fatalf("rows of big went from %d to %d through the escape attempts", rows, n)
	}
	record(t, fmt.Sprintf("%d escape attempts through HTTP on the frozen database (SET, BEGIN READ WRITE, ALTER ROLE/DATABASE, SECURITY DEFINER, "+
		"COPY, large objects, temp tables, SET ROLE to a group role, GRANT to itself, CREATE)", len(quotaEscapes)), "all refused; reads work; no row added")

	// 2. The wire proxy, on the same frozen database.
	conn := wireConn(ctx, t, s, db)
	for _, q := range quotaEscapes {
		_, err := conn.Exec(ctx, q)
		if err == nil {
			t.Errorf("wire proxy, frozen database: %q succeeded", q)
		}
		_, _ = conn.Exec(ctx, "ROLLBACK")
		_, _ = conn.Exec(ctx, "RESET ROLE")
	}
	if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("copied\n"), "COPY big FROM STDIN"); pgCode(err) != "42501" {
		t.Errorf("wire proxy: COPY FROM STDIN into a frozen database: %v; want SQLSTATE 42501", err)
	}
	if n := countBig(t, c, db); n != rows {
		t.Fatalf("rows of big went from %d to %d through the wire proxy", rows, n)
	}
	record(t, "the same escape attempts and COPY FROM STDIN through the wire proxy", "all refused (SQLSTATE 42501 and the like); no row added")

	// 3. An import into the frozen database fails before loading.
	id := c.startImport(t, db, "imported", csvRows(100), "")
	jr := c.waitJob(t, "import", id, time.Minute)
	if jr.str("state") != "FAILED" || jr.str("error_type") != "storage_limit_exceeded" {
		t.Fatalf("import into a frozen database: %s; want FAILED with storage_limit_exceeded", jr.Raw)
	}
	if got := c.mustQuery(t, db, "SELECT to_regclass('imported') IS NULL AS gone"); !strings.Contains(string(got.Raw), "true") {
		t.Fatalf("the refused import left its table behind: %s", got.Raw)
	}
	record(t, "import into the frozen database", "FAILED with storage_limit_exceeded before loading; no table created")

	// 4. DROP: the tenant owns nothing while frozen, bitd's helper drops.
	if r := c.query(t, db, "DROP TABLE dropme"); r.Status == 200 {
		t.Fatalf("DROP TABLE on a frozen database answered 200: the tenant still owns its tables")
	}
	c.mustQuery(t, db, "SELECT bitkit_frozen.drop_table('dropme')")
	if got := c.mustQuery(t, db, "SELECT to_regclass('dropme') IS NULL AS gone"); !strings.Contains(string(got.Raw), "true") {
		t.Fatalf("dropme still there after bitkit_frozen.drop_table: %s", got.Raw)
	}
	record(t, "DROP TABLE on the frozen database", "refused (the tenant owns nothing); SELECT bitkit_frozen.drop_table('t') drops it")

	// 5. TRUNCATE brings it back under; writes resume.
	c.mustQuery(t, db, "TRUNCATE big")
	waitThawedHTTP(t, c, db)
	record(t, "TRUNCATE on the frozen database", "allowed; the next pass thaws it and INSERT works again")

	// 6. The wire proxy fills it; DELETE (and the pass's VACUUM) brings it back.
	conn = wireConn(ctx, t, s, db)
	if _, err := conn.Exec(ctx, quotaFill); err != nil {
		t.Fatalf("fill through the wire proxy: %v", err)
	}
	waitFrozenWire(ctx, t, s, db)
	waitFrozenHTTP(t, c, db)
	conn = wireConn(ctx, t, s, db)
	if _, err := conn.Exec(ctx, "DELETE FROM big"); err != nil {
		t.Fatalf("DELETE through the wire proxy on a frozen database: %v", err)
	}
	waitThawedHTTP(t, c, db)
	record(t, "fill past the limit through the wire proxy, then DELETE FROM big", "frozen (INSERT: 42501); DELETE allowed, the pass vacuums and thaws it")

	// 7. An import that does not fit fails before loading; one that fits
	// by its file size but grows the database past the limit is measured
	// when it commits, and the database is frozen at once.
	left := limit - usage()
	big := csvRows(int(left/15) + 50000)
	id = c.startImport(t, db, "toobig", big, "")
	jr = c.waitJob(t, "import", id, time.Minute)
	if jr.str("state") != "FAILED" || jr.str("error_type") != "storage_limit_exceeded" {
		t.Fatalf("import of %d bytes with %d left: %s; want FAILED with storage_limit_exceeded", len(big), left, jr.Raw)
	}
	if got := c.mustQuery(t, db, "SELECT to_regclass('toobig') IS NULL AS gone"); !strings.Contains(string(got.Raw), "true") {
		t.Fatalf("the refused import left its table behind: %s", got.Raw)
	}
	waitThawedHTTP(t, c, db) // the upload's fast path may have taken it over while loading, then rolled back
	left = limit - usage()
	// Its rows take about three times its size: the pass may catch the
	// load itself over the limit (the load is ended and rolled back, the
	// job fails with storage_limit_exceeded), or the load commits and the
	// database is measured, and frozen, at once.
	fits := csvRows(int(left*8/10) / 19)
	id = c.startImport(t, db, "grows", fits, "")
	jr = c.waitJob(t, "import", id, 2*time.Minute)
	outcome := "loaded, and the database was frozen when it committed"
	switch {
	case jr.str("state") == "DONE":
	case jr.str("state") == "FAILED" && jr.str("error_type") == "storage_limit_exceeded":
		outcome = "caught over the limit while loading: FAILED with storage_limit_exceeded, rolled back"
		if got := c.mustQuery(t, db, "SELECT to_regclass('grows') IS NULL AS gone"); !strings.Contains(string(got.Raw), "true") {
			t.Fatalf("the import ended over the limit left its table behind: %s", got.Raw)
		}
	default:
		t.Fatalf("import of %d bytes with %d left: %s; want DONE, or FAILED with storage_limit_exceeded", len(fits), left, jr.Raw)
	}
	if jr.str("state") == "DONE" {
		waitFrozenHTTP(t, c, db)
		c.mustQuery(t, db, "TRUNCATE grows")
	} // else the rollback gave the space back: the next pass thaws it
	record(t, fmt.Sprintf("import of %d bytes with %d left; then one of %d bytes (its table grows past the limit)", len(big), left, len(fits)),
		"the first FAILED with storage_limit_exceeded, nothing created; the second "+outcome)
	waitThawedHTTP(t, c, db)
}

// countBig counts big's rows through HTTP (reads work while frozen).
func countBig(t *testing.T, c *client, db string) int {
	t.Helper()
	r := c.mustQuery(t, db, "SELECT count(*) AS n FROM big")
	data, _ := r.Body["data"].([]any)
	if len(data) == 1 {
		if row, _ := data[0].([]any); len(row) == 1 {
			if n, ok := row[0].(float64); ok {
				return int(n)
			}
		}
	}
	t.Fatalf("count big: %s", r.Raw)
	return 0
}

// waitFrozenHTTP waits (30 s at most) until an INSERT through HTTP answers
// 507 storage_limit_exceeded, and returns that answer.
func waitFrozenHTTP(t *testing.T, c *client, db string) result {
	t.Helper()
	var r result
	testwait.Eventually(t, 30*time.Second, func() error {
		r = c.query(t, db, "INSERT INTO big VALUES ('probe')")
		if r.Status == http.StatusInsufficientStorage && r.str("code") == "storage_limit_exceeded" {
			return nil
		}
		if r.Status != 200 {
			t.Fatalf("INSERT into a database over its limit: %d %s; want 507 storage_limit_exceeded", r.Status, r.Raw)
		}
		return fmt.Errorf("INSERT into a database over its limit: %d %s; want 507 storage_limit_exceeded", r.Status, r.Raw)
	})
	return r
}

// waitThawedHTTP waits (30 s at most) until an INSERT through HTTP works.
func waitThawedHTTP(t *testing.T, c *client, db string) {
	t.Helper()
	testwait.Eventually(t, 30*time.Second, func() error {
		r := c.query(t, db, "INSERT INTO big VALUES ('probe')")
		if r.Status == 200 {
			return nil
		}
		if r.Status != http.StatusInsufficientStorage {
			t.Fatalf("INSERT into a database back under its limit: %d %s; want 200", r.Status, r.Raw)
		}
		return fmt.Errorf("INSERT into a database back under its limit: %d %s; want 200", r.Status, r.Raw)
	})
}

// waitFrozenWire waits (30 s at most) until an INSERT through the wire
// proxy fails with SQLSTATE 42501, reconnecting when bitd ended the
// session at the freeze.
func waitFrozenWire(ctx context.Context, t *testing.T, s *bitdtest.Server, db string) {
	t.Helper()
	conn := wireConn(ctx, t, s, db)
	testwait.Eventually(t, 30*time.Second, func() error {
		_, err := conn.Exec(ctx, "INSERT INTO big VALUES ('probe')")
		if pgCode(err) == "42501" {
			return nil
		}
		if err != nil {
			conn = wireConn(ctx, t, s, db) // ended at the freeze
		}
		return fmt.Errorf("INSERT through the wire proxy into a database over its limit: %v; want SQLSTATE 42501", err)
	})
}

func wireConn(ctx context.Context, t *testing.T, s *bitdtest.Server, db string) *pgx.Conn {
	t.Helper()
	conn, err := proxyConnect(ctx, s.PGAddr, db, s.APIKey)
	if err != nil {
		t.Fatalf("connect through the wire proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestAttackQuotaWriteCheck: with the periodic pass made rare (an hour),
// writes through HTTP still get the database measured right after them,
// so filling it past its limit is refused within seconds.
func TestAttackQuotaWriteCheck(t *testing.T) {
	t.Parallel()
	s := startScanned(t, bitdtest.Args("--storage-check-interval", "1h"))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "nudge"+randSuffix(), true)
	c.mustQuery(t, db, "CREATE TABLE big (v text)")
	r := c.do(t, "GET", "/v2beta/db/"+db, nil)
	usage, _ := r.Body["storage_usage_bytes"].(float64)
	if r.Status != 200 || usage <= 0 {
		t.Fatalf("GET %s: %d %s", db, r.Status, r.Raw)
	}
	limit := int64(usage) + 3<<20
	// Through the API (lowering is allowed): the next pass is an hour away.
	if r := c.do(t, "PATCH", "/v2beta/db/"+db, map[string]any{"storage_limit_bytes": limit}); r.Status != 200 {
		t.Fatalf("lower the limit: %d %s", r.Status, r.Raw)
	}
	start := time.Now()
	c.mustQuery(t, db, quotaFill)
	waitFrozenHTTP(t, c, db)
	record(t, "fill past the limit through HTTP with --storage-check-interval 1h",
		fmt.Sprintf("refused with 507 storage_limit_exceeded %.1f s after the filling INSERT (checked after each write, at most once a second)",
			time.Since(start).Seconds()))
}

// TestQuotaFreezeSparesReads: a read that is running when its database is
// frozen for its storage quota has its session ended by the freeze (which
// ends the owner's running statements, so no write slips past it); bitd
// runs the read again on a new connection and answers it, as reads of a
// frozen database are answered. The read waits on an advisory lock the
// test holds, so it is running, deterministically, when the freeze comes.
func TestQuotaFreezeSparesReads(t *testing.T) {
	t.Parallel()
	s := startScanned(t, bitdtest.Args("--storage-check-interval", "300ms"))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "qread"+randSuffix(), true)
	c.mustQuery(t, db, "CREATE TABLE big (v text); INSERT INTO big VALUES ('before')")
	pgdb := c.mustQuery(t, db, "SELECT current_database()").Body["data"].([]any)[0].([]any)[0].(string)
	u, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + pgdb
	admin, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "SELECT pg_advisory_lock(4242)"); err != nil {
		t.Fatal(err)
	}
	r := c.do(t, "GET", "/v2beta/db/"+db, nil)
	usage, _ := r.Body["storage_usage_bytes"].(float64)
	if r.Status != 200 || usage <= 0 {
		t.Fatalf("GET %s: %d %s", db, r.Status, r.Raw)
	}
	if r := c.do(t, "PATCH", "/v2beta/db/"+db, map[string]any{"storage_limit_bytes": int64(usage) + 3<<20}); r.Status != 200 {
		t.Fatalf("lower the limit: %d %s", r.Status, r.Raw)
	}

	// It reads a catalog, not big: a lock on big would hold off the
	// freeze's own (it would end the read and try again, for ever).
	const read = "SELECT count(*) AS n FROM pg_catalog.pg_class WHERE pg_advisory_xact_lock_shared(4242) IS NOT NULL /* quota read */"
	type answered struct {
		r   result
		err error
	}
	answer := make(chan answered, 1)
	go func() {
		r, err := c.doE("POST", "/v2beta/query", map[string]any{"database_name": db, "query_string": read})
		answer <- answered{r, err}
	}()
	running := func() error {
		var n int
		if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'active' AND query = $1`, read).Scan(&n); err != nil || n != 1 {
			return fmt.Errorf("the read is not waiting on the lock yet (%d, %v)", n, err)
		}
		return nil
	}
	testwait.Eventually(t, 30*time.Second, running)
	c.mustQuery(t, db, quotaFill)
	waitFrozenHTTP(t, c, db)
	// The freeze ended the read's session (before and after it took the
	// privileges); bitd runs it again, and it waits on the lock once more.
	testwait.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(s.Logs(), "database frozen: over its storage limit") {
			return errors.New("the freeze has not finished")
		}
		if !strings.Contains(s.Logs(), "a statement the storage-quota freeze ended runs again") {
			return errors.New("bitd has not logged running the cut read again; its log ends:\n" + lastLines(s.Logs(), 30))
		}
		return running()
	})
	if _, err := admin.Exec(t.Context(), "SELECT pg_advisory_unlock(4242)"); err != nil {
		t.Fatal(err)
	}
	got := <-answer
	if got.err != nil || got.r.Status != 200 {
		t.Fatalf("the read running when the database was frozen: %d %s %v; want 200", got.r.Status, got.r.Raw, got.err)
	}
	// And writes are still refused.
	if r := c.query(t, db, "INSERT INTO big VALUES ('after')"); r.Status != http.StatusInsufficientStorage {
		t.Fatalf("INSERT after the freeze: %d %s; want 507", r.Status, r.Raw)
	}
	record(t, "a read running when its database is frozen for its storage quota (the freeze ends the owner's running statements)",
		"bitd runs it again on a new connection: 200; writes stay refused (507)")
}
