package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// tenantConn logs in to database d as its login role with suffix suf.
func tenantConn(t *testing.T, s *Store, d *Database, suf string) *pgx.Conn {
	t.Helper()
	cfg := tenantConfig(t, testURL(t))
	cfg.Database = d.PGName
	cfg.User = d.PGName + suf
	cfg.Password = secret.RolePassword(s.secret, cfg.User)
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("log in as %s: %v", cfg.User, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestFreezeThaw: a frozen database refuses every way of growing it to its
// owner and writer roles (and every escape tried from SQL), keeps reads,
// DELETE and TRUNCATE, and thawing gives back exactly the privileges it
// took, SECURITY DEFINER included.
func TestFreezeThaw(t *testing.T) {
	t.Parallel()
	testFreezeThaw(t, openTest(t))
}

// TestFreezeThawNonSuperuserAdmin: the same with a bitd admin that is not
// a superuser (CREATEDB, CREATEROLE).
func TestFreezeThawNonSuperuserAdmin(t *testing.T) {
	t.Parallel()
	su, role, adminURL := nonSuperuserAdmin(t)
	var log logBuf
	testFreezeThaw(t, openNonSuperuser(t, su, role, adminURL, "bitkit_fzns_"+strings.ToLower(secret.RandomBase62(8)), &log))
}

func testFreezeThaw(t *testing.T, s *Store) {
	ctx := t.Context()
	acct := newUserAccount(t, s, "frozen")
	d, err := s.CreateDatabase(ctx, acct, "q", true, 1)
	if err != nil {
		t.Fatal(err)
	}
	owner := tenantConn(t, s, d, OwnerSuffix)
	for _, q := range []string{
		"CREATE TABLE t (id int, v text)",
		"INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g",
		"CREATE TABLE only_owner (id int)",
		"CREATE TABLE dropped_while_frozen (id int)",
		"REVOKE INSERT ON only_owner FROM " + ident(d.PGName+WriterSuffix), // no INSERT for the writer: must stay so
		"CREATE FUNCTION sneak() RETURNS void LANGUAGE sql SECURITY DEFINER AS 'INSERT INTO t VALUES (0, ''definer'')'",
		"GRANT INSERT ON t TO " + ident(TenantsRole),               // a group role the tenant could SET ROLE to
		"GRANT UPDATE (v) ON t TO " + ident(d.PGName+PublicSuffix), // a column-level grant
		"SELECT lo_from_bytea(0, 'large')",
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	states, err := s.QuotaStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var q QuotaState
	for _, x := range states {
		if x.DatabaseID == d.ID {
			q = x
		}
	}
	if !q.Over() || q.Frozen {
		t.Fatalf("state before freezing: %+v; want over its 1-byte limit, not frozen", q)
	}
	if err := s.Freeze(ctx, q); err != nil {
		t.Fatal(err)
	}
	if q, err = s.QuotaState(ctx, d.ID); err != nil || !q.Frozen {
		t.Fatalf("after Freeze: %+v, %v; want frozen", q, err)
	}
	if err := s.Freeze(ctx, q); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	owner = tenantConn(t, s, d, OwnerSuffix) // Freeze ended its session
	writer := tenantConn(t, s, d, WriterSuffix)
	var lo uint32
	if err := owner.QueryRow(ctx, "SELECT oid FROM pg_largeobject_metadata LIMIT 1").Scan(&lo); err != nil {
		t.Fatal(err)
	}
	refused := []string{
		"INSERT INTO t VALUES (1, 'y')",
		"UPDATE t SET v = 'z'",
		"CREATE TABLE t2 (id int)",
		"CREATE TEMP TABLE tmp (id int)",
		"CREATE SCHEMA s2",
		"COPY t FROM PROGRAM 'true'",
		"SELECT lo_create(0)",
		"SELECT lo_from_bytea(0, 'more')",
		"SELECT lo_put(" + strconv.FormatUint(uint64(lo), 10) + ", 0, 'more')",
		"SELECT sneak()",
		"SET ROLE " + ident(TenantsRole) + "; INSERT INTO t VALUES (2, 'group')",
		"SET ROLE " + ident(d.PGName+FrozenSuffix),
		"SET session_replication_role = replica",
		"BEGIN READ WRITE; INSERT INTO t VALUES (3, 'rw'); COMMIT",
		"ALTER DATABASE " + ident(d.PGName) + " OWNER TO CURRENT_USER",
		"ALTER TABLE t OWNER TO CURRENT_USER",
		"GRANT INSERT ON t TO CURRENT_USER; INSERT INTO t VALUES (4, 'granted')", // the GRANT only warns
		"ALTER ROLE CURRENT_USER CREATEDB",
		"CREATE OR REPLACE FUNCTION sneak() RETURNS void LANGUAGE sql AS 'SELECT'",
		"DROP TABLE only_owner",
	}
	// A non-superuser admin cannot take the large-object functions from
	// PUBLIC (provisioning warns): then they stay open, frozen or not.
	var loOpen bool
	if err := owner.QueryRow(ctx, "SELECT has_function_privilege($1, 'lo_create(oid)', 'EXECUTE')", d.PGName+ReaderSuffix).Scan(&loOpen); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pgx.Conn{owner, writer} {
		for _, q := range refused {
			if loOpen && (strings.Contains(q, "lo_create") || strings.Contains(q, "lo_from_bytea")) {
				continue
			}
			_, err := c.Exec(ctx, q)
			if err == nil {
				t.Errorf("%s as %s: succeeded on a frozen database", q, c.Config().User)
			}
			_, _ = c.Exec(ctx, "ROLLBACK")
			_, _ = c.Exec(ctx, "RESET ROLE")
		}
	}
	if _, err := tenantConn(t, s, d, PublicSuffix).Exec(ctx, "UPDATE t SET v = 'column'"); sqlstate(err) != "42501" {
		t.Errorf("UPDATE through a column-level grant to the public role while frozen: %v; want 42501", err)
	}
	// COPY FROM STDIN goes through INSERT's privilege.
	if _, err := owner.PgConn().CopyFrom(ctx, strings.NewReader("9\tcopied\n"), "COPY t FROM STDIN"); sqlstate(err) != "42501" {
		t.Errorf("COPY FROM STDIN on a frozen database: %v; want SQLSTATE 42501", err)
	}
	var n int
	if err := writer.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 100 {
		t.Fatalf("read while frozen: %d rows, %v; want 100", n, err)
	}
	if _, err := owner.Exec(ctx, "DELETE FROM t WHERE id <= 10"); err != nil {
		t.Fatalf("DELETE while frozen: %v", err)
	}
	if _, err := writer.Exec(ctx, "DELETE FROM t WHERE id <= 20"); err != nil {
		t.Fatalf("DELETE as writer while frozen: %v", err)
	}
	if _, err := owner.Exec(ctx, "TRUNCATE t"); err != nil {
		t.Fatalf("TRUNCATE while frozen: %v", err)
	}
	if _, err := owner.Exec(ctx, "CREATE TABLE x ()"); err == nil {
		t.Fatal("CREATE TABLE while frozen succeeded")
	}
	if _, err := writer.Exec(ctx, "SELECT "+DropHelper+"('t')"); sqlstate(err) != "42501" {
		t.Errorf("the writer runs %s: %v; want 42501 (as DROP: the owner's)", DropHelper, err)
	}
	for _, rel := range []string{"pg_catalog.pg_class", "bitkit_frozen.drop_table"} {
		if _, err := owner.Exec(ctx, "SELECT "+DropHelper+"($1::text::regclass)", rel); err == nil {
			t.Errorf("%s(%s) succeeded", DropHelper, rel)
		}
	}
	if _, err := owner.Exec(ctx, "CREATE TEMP TABLE gone AS SELECT 1; SELECT "+DropHelper+"('only_owner')"); err == nil {
		t.Error("a temp table was created while frozen")
	}

	if _, err := owner.Exec(ctx, "DROP TABLE dropped_while_frozen"); err == nil {
		t.Error("DROP TABLE while frozen succeeded: the owner login role still owns it")
	}
	if _, err := owner.Exec(ctx, "SELECT "+DropHelper+"('dropped_while_frozen')"); err != nil {
		t.Errorf("%s while frozen: %v", DropHelper, err)
	}
	if err := s.VacuumFrozen(ctx, d.PGName); err != nil {
		t.Fatal(err)
	}

	if err := s.Thaw(ctx, q); err != nil {
		t.Fatal(err)
	}
	if q, err = s.QuotaState(ctx, d.ID); err != nil || q.Frozen {
		t.Fatalf("after Thaw: %+v, %v; want not frozen", q, err)
	}
	for _, q := range []string{
		"INSERT INTO t VALUES (1, 'back')",
		"CREATE TABLE t3 (id int)",
		"SELECT sneak()",
		"SELECT lo_create(0)",
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			t.Errorf("%s after thawing: %v", q, err)
		}
	}
	if _, err := writer.Exec(ctx, "INSERT INTO only_owner VALUES (1)"); sqlstate(err) != "42501" {
		t.Errorf("writer INSERT into a table whose INSERT the owner had taken from it, after thawing: %v; want 42501", err)
	}
	if _, err := owner.Exec(ctx, "DROP TABLE only_owner"); err != nil {
		t.Errorf("DROP TABLE after thawing: %v", err)
	}
	if _, err := writer.Exec(ctx, "INSERT INTO t VALUES (2, 'writer')"); err != nil {
		t.Errorf("writer INSERT after thawing: %v", err)
	}
	var col bool
	if err := owner.QueryRow(ctx, "SELECT has_column_privilege($1, 't', 'v', 'UPDATE')", d.PGName+PublicSuffix).Scan(&col); err != nil || !col {
		t.Errorf("the column-level UPDATE the owner granted: %v, %v; want it back", col, err)
	}
	var helper bool
	if err := owner.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'bitkit_frozen')").Scan(&helper); err != nil || helper {
		t.Errorf("schema bitkit_frozen after thawing: %v, %v; want dropped", helper, err)
	}
	var definer bool
	if err := owner.QueryRow(ctx, "SELECT prosecdef FROM pg_proc WHERE proname = 'sneak'").Scan(&definer); err != nil || !definer {
		t.Errorf("sneak() after thawing: SECURITY DEFINER %v, %v; want it back", definer, err)
	}
	var ins bool
	if err := owner.QueryRow(ctx, "SELECT has_table_privilege($1, 't', 'INSERT')", TenantsRole).Scan(&ins); err != nil || !ins {
		t.Errorf("the INSERT the owner granted on t to %s: %v, %v; want it back", TenantsRole, ins, err)
	}
	// Nothing of the freeze is kept: its row only records the thaw.
	var rows int64
	if err := s.DB.QueryRow(ctx, "SELECT count(*) FROM quota_freezes WHERE database_id = $1 AND (thawed_at IS NULL OR saved <> '{}')", d.ID).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("quota_freezes rows of a freeze after thawing: %d, %v; want 0", rows, err)
	}
	if thawed, err := s.ThawedWithin(ctx, d.ID, time.Minute); err != nil || !thawed {
		t.Errorf("ThawedWithin a minute after thawing: %v, %v; want true", thawed, err)
	}
	d.Role = "OWNER"
	if _, err := s.DeleteDatabase(ctx, d); err != nil {
		t.Fatal(err)
	}
}

// TestFreezeThroughReaderLock: a public reader holding a lock on a table
// (inside a transaction it leaves open) cannot keep its database from
// being frozen: past the freeze's lock_timeout its session is ended and
// the freeze tried again.
func TestFreezeThroughReaderLock(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	d, _, q := overLimit(t, s, "lockhold", false, "CREATE TABLE t (v int)")
	pub := tenantConn(t, s, d, PublicSuffix)
	if _, err := pub.Exec(ctx, "BEGIN; LOCK TABLE t IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	if err := s.Freeze(ctx, q); err != nil {
		t.Fatalf("freeze while a public reader holds a lock: %v", err)
	}
	if q, err := s.QuotaState(ctx, d.ID); err != nil || !q.Frozen {
		t.Fatalf("after Freeze: %+v, %v; want frozen", q, err)
	}
	if _, err := pub.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("the public reader's session that held the lock is still open")
	}
}

// TestFrozenDatabaseDeleteFinished: a frozen database whose physical drop
// did not happen (bitd stopped) is dropped with its frozen role by the
// next Open.
func TestFrozenDatabaseDeleteFinished(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	d, err := s.CreateDatabase(ctx, newUserAccount(t, s, "frozendel"), "q", true, 1)
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.QuotaState(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Freeze(ctx, q); err != nil {
		t.Fatal(err)
	}
	// What DeleteDatabase records before its physical drop.
	if _, err := s.DB.Exec(ctx, "UPDATE databases SET deleted_at = now() WHERE id = $1", d.ID); err != nil {
		t.Fatal(err)
	}
	o, err := Open(ctx, Options{AdminURL: testURL(t), MetadataDB: s.MetadataDB(), Secret: s.secret})
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	var n int
	if err := s.admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_database WHERE datname = $1)
		+ (SELECT count(*) FROM pg_roles WHERE rolname = $1 OR rolname LIKE $1 || '\_%')`, d.PGName).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d objects of the deleted frozen database left after Open (%v)", n, err)
	}
}

// TestFreezeEndsSessionsWithTempTables: temporary tables live in their
// session, out of the freeze's reach: an idle owner session holding one is
// ended, and the freeze goes through.
func TestFreezeEndsSessionsWithTempTables(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	d, owner, q := overLimit(t, s, "tmpidle", true, "CREATE TEMP TABLE tt (v text); INSERT INTO tt VALUES ('a')")
	if err := s.Freeze(ctx, q); err != nil {
		t.Fatalf("freeze with an idle session holding a temporary table: %v", err)
	}
	if _, err := owner.Exec(ctx, "INSERT INTO tt VALUES ('b')"); err == nil {
		t.Error("the session with a temporary table still writes to it while frozen")
	}
	if _, err := tenantConn(t, s, d, OwnerSuffix).Exec(ctx, "CREATE TEMP TABLE tt (v text)"); sqlstate(err) != "42501" {
		t.Errorf("CREATE TEMP TABLE in a new session while frozen: %v; want 42501", err)
	}
}

// TestFreezeAgainSparesRunningStatements: the passes after a freeze find
// the database still over its limit and freeze it again, which changes
// nothing: they must not end the owner's running statements (the DELETE
// that brings it back under, typically).
func TestFreezeAgainSparesRunningStatements(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	d, _, q := overLimit(t, s, "refrozen", true, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
	if err := s.Freeze(ctx, q); err != nil {
		t.Fatal(err)
	}
	owner := tenantConn(t, s, d, OwnerSuffix) // the freeze ended the first session
	done := make(chan error, 1)
	go func() {
		_, err := owner.Exec(ctx, "DELETE FROM t WHERE pg_sleep(0.002) IS NOT NULL") // about 2 s
		done <- err
	}()
	testwaitActive(t, s, d.PGName, "DELETE FROM t")
	q, err := s.QuotaState(ctx, d.ID)
	if err != nil || !q.Frozen {
		t.Fatalf("state: %+v, %v; want frozen", q, err)
	}
	if err := s.Freeze(ctx, q); err != nil { // the next pass
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the DELETE running while a pass froze the frozen database again: %v; want it to finish", err)
	}
}

// testwaitActive waits until a statement starting with prefix runs in
// database pgName.
func testwaitActive(t *testing.T, s *Store, pgName, prefix string) {
	t.Helper()
	testwait.Eventually(t, 30*time.Second, func() error {
		var n int
		if err := s.admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_catalog.pg_stat_activity
			WHERE datname = $1 AND state = 'active' AND starts_with(query, $2)`, pgName, prefix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return errors.New("the statement is not running yet")
		}
		return nil
	})
}

// overLimit creates a database (public or not) of a new user named user
// with a storage limit of 1 byte, runs setup in it on a session of its
// owner role, and returns it, that session and its quota state (over its
// limit, not frozen).
func overLimit(t *testing.T, s *Store, user string, public bool, setup string) (*Database, *pgx.Conn, QuotaState) {
	t.Helper()
	ctx := t.Context()
	d, err := s.CreateDatabase(ctx, newUserAccount(t, s, user), "q", public, 1)
	if err != nil {
		t.Fatal(err)
	}
	owner := tenantConn(t, s, d, OwnerSuffix)
	if _, err := owner.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	q, err := s.QuotaState(ctx, d.ID)
	if err != nil || !q.Over() || q.Frozen {
		t.Fatalf("state: %+v, %v; want over its 1-byte limit, not frozen", q, err)
	}
	return d, owner, q
}
