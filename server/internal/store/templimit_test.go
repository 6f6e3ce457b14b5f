package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// logBuf is a concurrency-safe log sink for slog.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// openWith opens another Store on s's metadata database (as the admin URL
// adminURL) with the temp_file_limit option, closed when the test ends.
func openWith(t *testing.T, adminURL, metaDB, limit string, log *logBuf) *Store {
	t.Helper()
	o, err := Open(t.Context(), Options{AdminURL: adminURL, MetadataDB: metaDB, Secret: testSecret, TempFileLimit: limit, Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// dbTempLimit returns the database-level temp_file_limit setting of pgName
// ("" when there is none).
func dbTempLimit(t *testing.T, s *Store, pgName string) string {
	t.Helper()
	var v string
	err := s.admin.QueryRow(t.Context(), `SELECT coalesce((SELECT substr(c, 17) FROM pg_db_role_setting rs, unnest(rs.setconfig) c
		WHERE rs.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1) AND rs.setrole = 0 AND c LIKE 'temp\_file\_limit=%'), '')`,
		pgName).Scan(&v)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// connectAs connects to d as its role for permission (password derived from
// the test secret), with extra startup parameters.
func connectAs(t *testing.T, d *Database, permission string, params map[string]string) (*pgx.Conn, error) {
	t.Helper()
	role := RoleFor(d.PGName, permission)
	cfg := tenantConfig(t, testURL(t))
	cfg.User, cfg.Password, cfg.Database = role, secret.RolePassword(testSecret, role), d.PGName
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func newUserAccount(t *testing.T, s *Store, name string) string {
	t.Helper()
	u, err := s.CreateUser(t.Context(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	return u.DefaultAccount.ID
}

// TestTempFileLimitEnforced checks that a new database gets temp_file_limit,
// that a platform role's spilling sort fails with 53400 once it is reached,
// and that no platform role, the owner included, can lift the limit.
func TestTempFileLimitEnforced(t *testing.T) {
	t.Parallel()
	base := openTest(t)
	var log logBuf
	s := openWith(t, testURL(t), base.MetadataDB(), "1MB", &log)
	ctx := t.Context()
	d, err := s.CreateDatabase(ctx, newUserAccount(t, s, "tfl"), "sorts", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := dbTempLimit(t, s, d.PGName); got != "1MB" {
		t.Fatalf("database-level temp_file_limit %q, want 1MB", got)
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("superuser admin logged a warning:\n%s", log.String())
	}
	for _, perm := range []string{"OWNER", "WRITER", "READER"} {
		c, err := connectAs(t, d, perm, nil)
		if err != nil {
			t.Fatalf("connect as %s: %v", perm, err)
		}
		var shown string
		if err := c.QueryRow(ctx, "SHOW temp_file_limit").Scan(&shown); err != nil || shown != "1MB" {
			t.Fatalf("%s: SHOW temp_file_limit = %q, %v", perm, shown, err)
		}
		// work_mem is the tenant's to set: low, so the sort spills.
		if _, err := c.Exec(ctx, "SET work_mem = '64kB'"); err != nil {
			t.Fatal(err)
		}
		_, err = c.Exec(ctx, "SELECT g FROM generate_series(1, 2000000) g ORDER BY g DESC")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53400" || !strings.Contains(pe.Message, "temp_file_limit") {
			t.Fatalf("%s: spilling sort: %v; want SQLSTATE 53400 temporary file size exceeds temp_file_limit", perm, err)
		}
		// A sort that fits is unaffected.
		if _, err := c.Exec(ctx, "SELECT g FROM generate_series(1, 1000) g ORDER BY g DESC"); err != nil {
			t.Fatalf("%s: small sort: %v", perm, err)
		}
	}
	// The owner, the tenant's most privileged role, cannot lift it in any
	// of the ways PostgreSQL offers a database owner.
	owner, err := connectAs(t, d, "OWNER", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := ident(d.PGName)
	for _, q := range []string{
		"SET temp_file_limit = -1",
		"SET LOCAL temp_file_limit = -1",
		"SELECT set_config('temp_file_limit', '-1', false)",
		"RESET temp_file_limit", // a no-op at worst: must not restore the default
		"ALTER DATABASE " + db + " RESET temp_file_limit",
		"ALTER DATABASE " + db + " SET temp_file_limit = -1",
		"ALTER DATABASE " + db + " RESET ALL",
		"ALTER ROLE CURRENT_USER SET temp_file_limit = -1",
		"ALTER ROLE CURRENT_USER IN DATABASE " + db + " SET temp_file_limit = -1",
		"CREATE FUNCTION lift() RETURNS void LANGUAGE sql SET temp_file_limit = -1 AS 'SELECT 1'",
	} {
		_, err := owner.Exec(ctx, q)
		if q == "RESET temp_file_limit" || q == "ALTER DATABASE "+db+" RESET ALL" {
			// RESET keeps the database-level value; RESET ALL drops only
			// the settings its caller may change (PostgreSQL skips
			// superuser-only ones) — both checked by what is left below.
			continue
		}
		if sqlState(err) != "42501" {
			t.Errorf("owner %q: %v; want SQLSTATE 42501 (permission denied)", q, err)
		}
	}
	var shown string
	if err := owner.QueryRow(ctx, "SHOW temp_file_limit").Scan(&shown); err != nil || shown != "1MB" {
		t.Errorf("owner session after the attempts: temp_file_limit %q, %v", shown, err)
	}
	if got := dbTempLimit(t, s, d.PGName); got != "1MB" {
		t.Errorf("database-level temp_file_limit after the owner's attempts: %q, want 1MB", got)
	}
	// Nor as a startup parameter (what a client's PGOPTIONS sends).
	if _, err := connectAs(t, d, "OWNER", map[string]string{"temp_file_limit": "-1"}); sqlState(err) != "42501" {
		t.Errorf("owner connecting with temp_file_limit=-1: %v; want SQLSTATE 42501", err)
	}
	if c, err := connectAs(t, d, "OWNER", map[string]string{"options": "-c temp_file_limit=-1"}); err == nil {
		var v string
		_ = c.QueryRow(ctx, "SHOW temp_file_limit").Scan(&v)
		t.Errorf("owner connected with options -c temp_file_limit=-1 (temp_file_limit %q)", v)
	}
}

// TestTempFileLimitStartupPass checks that Open brings every live platform
// database to the configured limit (databases made without one, with
// another value, a changed flag, -1), altering only those that differ.
func TestTempFileLimitStartupPass(t *testing.T) {
	t.Parallel()
	base := openTest(t) // no TempFileLimit: provisions without one
	ctx := t.Context()
	acct := newUserAccount(t, base, "pass")
	var dbs []*Database
	for _, n := range []string{"a", "b", "c", "gone"} {
		d, err := base.CreateDatabase(ctx, acct, n, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := dbTempLimit(t, base, d.PGName); got != "" {
			t.Fatalf("store without TempFileLimit set %q", got)
		}
		dbs = append(dbs, d)
	}
	if _, err := base.admin.Exec(ctx, "ALTER DATABASE "+ident(dbs[1].PGName)+" SET temp_file_limit = '7MB'"); err != nil {
		t.Fatal(err)
	}
	// A deleted database is left alone: mark one deleted without dropping
	// it, as a crash between the two steps would.
	if _, err := base.DB.Exec(ctx, "UPDATE databases SET deleted_at = now() WHERE id = $1", dbs[3].ID); err != nil {
		t.Fatal(err)
	}
	applied := func(log *logBuf) string {
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "temp_file_limit applied") {
				_, n, _ := strings.Cut(l, "databases=")
				return n
			}
		}
		return "0"
	}
	check := func(want ...string) {
		t.Helper()
		for i, w := range want {
			if got := dbTempLimit(t, base, dbs[i].PGName); got != w {
				t.Errorf("database %s: temp_file_limit %q, want %q", dbs[i].Name, got, w)
			}
		}
	}
	var l1 logBuf
	openWith(t, testURL(t), base.MetadataDB(), "2GB", &l1)
	check("2GB", "2GB", "2GB", "")
	if n := applied(&l1); n != "3" {
		t.Errorf("first pass altered %s databases, want 3:\n%s", n, l1.String())
	}
	var l2 logBuf
	openWith(t, testURL(t), base.MetadataDB(), "2GB", &l2)
	if n := applied(&l2); n != "0" {
		t.Errorf("a pass with nothing to change altered %s databases:\n%s", n, l2.String())
	}
	var l3 logBuf
	s3 := openWith(t, testURL(t), base.MetadataDB(), "1536kB", &l3)
	check("1536kB", "1536kB", "1536kB", "")
	if n := applied(&l3); n != "3" {
		t.Errorf("changed flag altered %s databases, want 3", n)
	}
	// A setting made by the pass applies to the next session.
	c, err := connectAs(t, dbs[0], "READER", nil)
	if err != nil {
		t.Fatal(err)
	}
	var shown string
	if err := c.QueryRow(ctx, "SHOW temp_file_limit").Scan(&shown); err != nil || shown != "1536kB" {
		t.Errorf("reader session: temp_file_limit %q, %v", shown, err)
	}
	// SyncTempFileLimit again on the same store: nothing to do.
	if n, err := s3.SyncTempFileLimit(ctx); n != 0 || err != nil {
		t.Errorf("SyncTempFileLimit = %d, %v; want 0, nil", n, err)
	}
	var l4 logBuf
	s4 := openWith(t, testURL(t), base.MetadataDB(), "-1", &l4)
	check("", "", "", "")
	if n := applied(&l4); n != "3" {
		t.Errorf("-1 removed the setting from %s databases, want 3", n)
	}
	d, err := s4.CreateDatabase(ctx, acct, "unlimited", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := dbTempLimit(t, s4, d.PGName); got != "" {
		t.Errorf("-1: new database got temp_file_limit %q", got)
	}
	if strings.Contains(l1.String()+l2.String()+l3.String()+l4.String(), "level=WARN") {
		t.Errorf("warnings with a superuser admin:\n%s%s%s%s", l1.String(), l2.String(), l3.String(), l4.String())
	}
	if _, err := Open(ctx, Options{AdminURL: testURL(t), MetadataDB: base.MetadataDB(), TempFileLimit: "5 GB"}); err == nil {
		t.Error("Open accepted a non-canonical TempFileLimit")
	}
}

// nonSuperuserAdmin creates a CREATEDB CREATEROLE login role that is not a
// superuser, dropped when the test ends (after the stores it ran).
func nonSuperuserAdmin(t *testing.T) (su *pgx.Conn, role, adminURL string) {
	t.Helper()
	ctx := t.Context()
	su, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	role = "bitkit_ns_admin_" + strings.ToLower(secret.RandomBase62(8))
	pw := secret.RandomBase62(24)
	if _, err := su.Exec(ctx, "CREATE ROLE "+ident(role)+" LOGIN CREATEDB CREATEROLE NOSUPERUSER PASSWORD "+quoteLiteral(pw)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // registered first: runs after the stores' cleanups
		c := context.Background()
		_, _ = su.Exec(c, "REVOKE SET ON PARAMETER temp_file_limit FROM "+ident(role))
		if _, err := su.Exec(c, "DROP ROLE "+ident(role)); err != nil {
			t.Error(err)
		}
		su.Close(c)
	})
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, pw)
	return su, role, u.String()
}

// openNonSuperuser opens a Store on metadata database meta as the
// non-superuser admin; when the test ends it drops everything the store made.
func openNonSuperuser(t *testing.T, su *pgx.Conn, role, adminURL, meta string, log *logBuf) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{AdminURL: adminURL, MetadataDB: meta, Secret: testSecret, TempFileLimit: "1MB", Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		// Superuser sessions (the test's own) cannot be ended by the
		// admin, and a closed pgx connection's backend can outlive Close
		// by a moment: end them (and wait) before DropEverything's
		// DROP … WITH (FORCE).
		rows, _ := s.DB.Query(c, `SELECT pg_name FROM databases`)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Error(err)
		}
		if _, err := su.Exec(c, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND usesysid IN (SELECT oid FROM pg_roles WHERE rolsuper) AND datname = ANY($1)`, names); err != nil {
			t.Error(err)
		}
		if err := s.DropEverything(c); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestNonSuperuserAdminDeletesBusyDatabase: an admin that is not a
// superuser deletes databases whose writer and reader have sessions open
// (DROP DATABASE … WITH (FORCE) needs membership in their roles). For a
// database provisioned before the admin was made a member, the delete fails
// half-way; the next start grants the memberships and finishes it.
func TestNonSuperuserAdminDeletesBusyDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	su, role, adminURL := nonSuperuserAdmin(t)
	meta := "bitkit_st_" + secret.RandomBase62(10)
	var log logBuf
	s := openNonSuperuser(t, su, role, adminURL, meta, &log)
	acct := newUserAccount(t, s, "busy")
	busy := func(d *Database) {
		t.Helper()
		for _, perm := range []string{"WRITER", "READER"} {
			if _, err := connectAs(t, d, perm, nil); err != nil {
				t.Fatalf("%s session: %v", perm, err)
			}
		}
	}
	gone := func(d *Database) {
		t.Helper()
		var n int
		if err := su.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, d.PGName).Scan(&n); err != nil || n != 0 {
			t.Errorf("database %s still there after DeleteDatabase (%d, %v)", d.PGName, n, err)
		}
	}
	d, err := s.CreateDatabase(ctx, acct, "busy", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	busy(d)
	if _, err := s.DeleteDatabase(ctx, d); err != nil {
		t.Fatalf("delete a database with open writer and reader sessions: %v", err)
	}
	gone(d)

	// A database from before the grant: take the memberships away, as a
	// superuser, then start again.
	old, err := s.CreateDatabase(ctx, acct, "old", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, fmt.Sprintf("REVOKE %s, %s FROM %s", ident(old.PGName+WriterSuffix), ident(old.PGName+ReaderSuffix), ident(role))); err != nil {
		t.Fatal(err)
	}
	busy(old)
	// Without the memberships the delete fails after the metadata row is
	// marked deleted: the database is left behind.
	if _, err := s.DeleteDatabase(ctx, old); sqlState(err) != "42501" {
		t.Fatalf("premise: deleting without the memberships: %v; want 42501", err)
	}
	var n int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, old.PGName).Scan(&n); err != nil || n != 1 {
		t.Fatalf("premise: the failed delete should have left the database (%d, %v)", n, err)
	}
	// The next start grants the memberships and finishes the delete.
	var log2 logBuf
	openWith(t, adminURL, meta, "1MB", &log2)
	for _, want := range []string{"admin made a member of platform roles", "dropped a deleted database left behind"} {
		if !strings.Contains(log2.String(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, log2.String())
		}
	}
	gone(old)
	var roles int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname LIKE $1`, old.PGName+"\\_%").Scan(&roles); err != nil || roles != 0 {
		t.Errorf("roles of the deleted database left: %d (%v)", roles, err)
	}
}

// TestTempFileLimitNonSuperuserAdmin runs the store with a CREATEDB
// CREATEROLE admin that is not a superuser: databases are provisioned
// without the limit and one warning names the fix; once a superuser grants
// SET ON PARAMETER temp_file_limit, the next start applies it.
func TestTempFileLimitNonSuperuserAdmin(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	su, role, adminURL := nonSuperuserAdmin(t)
	meta := "bitkit_st_" + secret.RandomBase62(10)
	var log logBuf
	s := openNonSuperuser(t, su, role, adminURL, meta, &log)
	acct := newUserAccount(t, s, "nonsuper")
	d, err := s.CreateDatabase(ctx, acct, "plain", true, 0)
	if err != nil {
		t.Fatalf("non-superuser admin could not provision: %v", err)
	}
	if got := dbTempLimit(t, s, d.PGName); got != "" {
		t.Errorf("temp_file_limit %q set by an admin that may not", got)
	}
	logs := log.String()
	if n := strings.Count(logs, "level=WARN msg=\"temp_file_limit"); n != 1 || !strings.Contains(logs, "GRANT SET ON PARAMETER temp_file_limit TO") || !strings.Contains(logs, role) {
		t.Fatalf("want exactly one temp_file_limit warning naming the GRANT; got %d:\n%s", n, logs)
	}
	// The REVOKEs of provisioning did nothing (PostgreSQL only warns):
	// bitd says so, with the fix, and the reader can indeed run them.
	const fnWarn = "readers of platform databases can run lo_creat, lo_create, lo_from_bytea, pg_logical_emit_message"
	if n := strings.Count(logs, fnWarn); n != 1 || !strings.Contains(logs, "REVOKE EXECUTE ON FUNCTION") {
		t.Fatalf("want one warning about the functions left open, with the fix; got %d:\n%s", n, logs)
	}
	if _, err := s.CreateDatabase(ctx, acct, "second", true, 0); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), fnWarn); n != 1 {
		t.Errorf("the function warning was logged %d times; want once per process", n)
	}
	if c, err := connectAs(t, d, "READER", nil); err != nil {
		t.Fatal(err)
	} else if _, err := c.Exec(ctx, "SELECT lo_unlink(lo_creat(-1))"); err != nil {
		t.Errorf("the warning says readers can create large objects, but: %v", err)
	}
	if c, err := connectAs(t, d, "OWNER", nil); err != nil {
		t.Fatal(err)
	} else if _, err := c.Exec(ctx, "CREATE TABLE t (v int)"); err != nil {
		t.Fatalf("owner of a database made by a non-superuser admin: %v", err)
	}

	// The fix the warning names.
	if _, err := su.Exec(ctx, "GRANT SET ON PARAMETER temp_file_limit TO "+ident(role)); err != nil {
		t.Fatal(err)
	}
	var log2 logBuf
	s2 := openWith(t, adminURL, meta, "1MB", &log2)
	if got := dbTempLimit(t, s2, d.PGName); got != "1MB" {
		t.Errorf("after the grant, the start-up pass left temp_file_limit %q", got)
	}
	d2, err := s2.CreateDatabase(ctx, acct, "limited", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := dbTempLimit(t, s2, d2.PGName); got != "1MB" {
		t.Errorf("after the grant, a new database got temp_file_limit %q", got)
	}
	if strings.Contains(log2.String(), "level=WARN msg=\"temp_file_limit") {
		t.Errorf("temp_file_limit warning after the grant:\n%s", log2.String())
	}
	// The fix the function warning names, applied to d2 by a superuser
	// (in template1 it would reach every later database; the test leaves
	// template1 alone, as parallel tests create databases from it).
	fix := logs[strings.Index(logs, "DO $$"):]
	fix = fix[:strings.Index(fix, "END$$")+len("END$$")]
	suCfg, err := pgx.ParseConfig(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	suCfg.Database = d2.PGName
	su2, err := pgx.ConnectConfig(ctx, suCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer su2.Close(context.Background())
	if _, err := su2.Exec(ctx, fix); err != nil {
		t.Fatalf("the fix in the warning: %v\n%s", err, fix)
	}
	var log3 logBuf
	s3 := openWith(t, adminURL, meta, "1MB", &log3)
	s3.checkRestrictedFunctions(ctx, su2, d2.PGName, d2.PGName+ReaderSuffix)
	if strings.Contains(log3.String(), fnWarn) {
		t.Errorf("function warning after the fix:\n%s", log3.String())
	}
	if c, err := connectAs(t, d2, "READER", nil); err != nil {
		t.Fatal(err)
	} else if _, err := c.Exec(ctx, "SELECT lo_creat(-1)"); sqlState(err) != "42501" {
		t.Errorf("reader lo_creat after the fix: %v; want 42501", err)
	}
	// Still beyond the owner's reach.
	c, err := connectAs(t, d2, "OWNER", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "ALTER DATABASE "+ident(d2.PGName)+" RESET temp_file_limit"); sqlState(err) != "42501" {
		t.Errorf("owner RESET under a granted admin: %v; want 42501", err)
	}
}
