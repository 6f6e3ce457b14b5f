package pgtest_test

import (
	"context"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestProvisioned: a database from New has the production role setup (what
// each role may do) and is gone after Drop.
func TestProvisioned(t *testing.T) {
	d := pgtest.New(t)
	ctx := t.Context()
	if err := d.Exec(ctx, d.Owner, "CREATE TABLE t (id serial PRIMARY KEY, v text)", "INSERT INTO t (v) VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role, sql string
		ok        bool
	}{
		{d.Writer, "INSERT INTO t (v) VALUES ('b')", true}, // table and sequence grants
		{d.Writer, "CREATE TABLE w (x int)", false},
		{d.Reader, "SELECT count(*) FROM t", true},
		{d.Reader, "INSERT INTO t (v) VALUES ('c')", false},
		{d.Public, "SELECT count(*) FROM t", true},
		{d.Public, "SELECT lo_creat(-1)", false},
	} {
		err := d.Exec(ctx, tc.role, tc.sql)
		if (err == nil) != tc.ok {
			t.Errorf("%s as %s: err %v, want ok=%v", tc.sql, tc.role, err, tc.ok)
		}
	}
	if d.Role("ADMIN") != d.Owner || d.Role("READER") != d.Reader {
		t.Errorf("Role maps ADMIN to %s and READER to %s", d.Role("ADMIN"), d.Role("READER"))
	}
	var inherit bool
	conn, err := pgx.Connect(ctx, d.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "SELECT bool_or(rolinherit) FROM pg_roles WHERE rolname = ANY($1)",
		[]string{d.Owner, d.Writer, d.Reader, d.Public}).Scan(&inherit); err != nil || inherit {
		t.Errorf("login roles INHERIT = %v (%v), want NOINHERIT", inherit, err)
	}

	c := pgtest.Get(t)
	d2, err := c.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Name == d.Name || d2.FullName == d.FullName {
		t.Fatalf("two databases named %s (%s)", d.Name, d.FullName)
	}
	if err := c.Drop(ctx, d2); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 || '%')",
		d2.Name).Scan(&left); err != nil || left != 0 {
		t.Errorf("after Drop, %d objects of %s are left (%v)", left, d2.Name, err)
	}
}

// TestSweepStale: what a test process killed before Close left behind
// (its metadata database and platform databases) is dropped by the next
// Open, and a live Cluster's is not.
func TestSweepStale(t *testing.T) {
	ctx := t.Context()
	live := pgtest.Get(t)
	kept := pgtest.New(t)
	dead, err := pgtest.Open(ctx, live.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	left, err := dead.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadMeta := dead.Store.MetadataDB()
	dead.Kill() // as if its process ended without Close
	conn, err := pgx.Connect(ctx, live.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exists := func(db string) bool {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !exists(deadMeta) || !exists(left.Name) {
		t.Fatal("premise: the killed cluster's databases are there")
	}
	next, err := pgtest.Open(ctx, live.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(deadMeta) || exists(left.Name) {
		t.Errorf("after the next Open: metadata database left %v, platform database left %v", exists(deadMeta), exists(left.Name))
	}
	if !exists(live.Store.MetadataDB()) || !exists(kept.Name) {
		t.Error("the next Open dropped a live cluster's databases")
	}
}
