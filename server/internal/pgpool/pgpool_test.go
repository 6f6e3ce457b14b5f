package pgpool_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
)

var testSecret = []byte("pgpool-test-secret-0123456789abcdef")

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture provisions a platform database for t through the store's own
// code path (pgtest), dropped when t ends, and returns the cluster admin
// URL, the database, its owner role and the secret its role passwords
// derive from.
func fixture(t *testing.T) (adminURL, db, role string, sec []byte) {
	t.Helper()
	d := pgtest.New(t)
	return d.ClusterURL, d.Name, d.Owner, d.Secret
}

// passwordRole creates a database and a login role (not a platform role)
// that pg_hba makes log in with its password, as bitd's tenant roles do on a
// remote cluster (hostssl … scram-sha-256). The test cluster lets platform
// roles in over its socket without a password, so a password test needs a
// role of its own; both are dropped at cleanup.
func passwordRole(t *testing.T) (adminURL, db, role string, sec []byte) {
	t.Helper()
	adminURL = pgtest.Get(t).AdminURL
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	db = "pw_" + hex.EncodeToString(b)
	role, sec = db+"_o", testSecret
	exec := func(sql string) {
		t.Helper()
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, secret.RolePassword(sec, role)))
	exec(fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, role))
	t.Cleanup(func() {
		exec(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db))
		exec("DROP ROLE IF EXISTS " + role)
	})
	return adminURL, db, role, sec
}

func TestPool(t *testing.T) {
	adminURL, db, role, sec := fixture(t)
	m := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec, MaxPools: 2})
	defer m.Close()
	ctx := t.Context()

	p1, err := m.Pool(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := m.Pool(ctx, db, role)
	if err != nil || p1 != p2 {
		t.Fatalf("second Pool call returned another pool (%v)", err)
	}
	var user, dbName, app, tz string
	if err := p1.QueryRow(ctx, "SELECT current_user::text, current_database()::text, current_setting('application_name'), current_setting('TimeZone')").Scan(&user, &dbName, &app, &tz); err != nil {
		t.Fatal(err)
	}
	if user != role || dbName != db || app != "bitd" || tz != "UTC" {
		t.Errorf("session = %s@%s app %q tz %q", user, dbName, app, tz)
	}
	if got := p1.Config().MaxConns; got != pgpool.DefaultMaxConnsPerPool {
		t.Errorf("MaxConns = %d", got)
	}
	if got := p1.Config().MinConns; got != 0 {
		t.Errorf("MinConns = %d", got)
	}

	t.Run("session reset on release", func(t *testing.T) {
		m1 := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec, MaxConnsPerPool: 1})
		defer m1.Close()
		p1, err := m1.Pool(ctx, db, role)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p1.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pid := c.Conn().PgConn().PID()
		if _, err := c.Exec(ctx, "SET work_mem = '1MB'"); err != nil {
			t.Fatal(err)
		}
		c.Release()
		c, err = p1.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		if c.Conn().PgConn().PID() != pid {
			t.Fatal("a pool of one connection handed out another backend")
		}
		var wm string
		if err := c.QueryRow(ctx, "SHOW work_mem").Scan(&wm); err != nil {
			t.Fatal(err)
		}
		if wm == "1MB" {
			t.Error("SET survived the release of the connection")
		}
	})

	t.Run("lru bound", func(t *testing.T) {
		if _, err := m.Pool(ctx, db+"_x", role); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Pool(ctx, db+"_y", role); err != nil {
			t.Fatal(err)
		}
		if n := m.Len(); n != 2 {
			t.Errorf("%d pools open, bound is 2", n)
		}
	})

	t.Run("close database", func(t *testing.T) {
		p, err := m.Pool(ctx, db, role)
		if err != nil {
			t.Fatal(err)
		}
		busy, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m.CloseDatabase(db) // must not wait for busy
		busy.Release()
		testwait.Eventually(t, 10*time.Second, func() error {
			c, err := p.Acquire(ctx)
			if err != nil {
				return nil
			}
			c.Release()
			return errors.New("a closed pool still hands out connections")
		})
		p3, err := m.Pool(ctx, db, role)
		if err != nil || p3 == p {
			t.Errorf("after CloseDatabase, Pool = %p (%v), want a new pool", p3, err)
		}
	})
}

func TestPoolWrongSecretLeaksNoPassword(t *testing.T) {
	adminURL, db, role, sec := passwordRole(t)
	wrong := []byte("another-secret-0123456789abcdef0123456")
	m := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: wrong})
	defer m.Close()
	p, err := m.Pool(t.Context(), db, role)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Acquire(t.Context())
	if err == nil {
		c.Release() // or m.Close would wait for it
		t.Fatal("login with a password from the wrong secret succeeded")
	}
	for _, pw := range []string{secret.RolePassword(wrong, role), secret.RolePassword(sec, role)} {
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error contains a role password: %v", err)
		}
	}
}

func TestBadConnString(t *testing.T) {
	t.Parallel()
	m := pgpool.New(pgpool.Config{ConnString: "postgres://u:hunter2@[::1", Secret: testSecret})
	defer m.Close()
	_, err := m.Pool(t.Context(), "db", "role")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v, want a parse error without the password", err)
	}
}

func TestCopyInGuard(t *testing.T) {
	adminURL, db, role, sec := fixture(t)
	m := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec})
	defer m.Close()
	ctx := t.Context()
	p, err := m.Pool(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, "CREATE TABLE c (x int)"); err != nil {
		t.Fatal(err)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	pc := c.Conn().PgConn()
	// Unarmed: COPY FROM STDIN works (import jobs rely on it).
	tag, err := pc.CopyFrom(ctx, strings.NewReader("1\n2\n"), "COPY c FROM STDIN")
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("unarmed COPY FROM STDIN = %v, %v", tag, err)
	}
	if pgpool.CopyInRefused(pc) {
		t.Fatal("CopyInRefused after an allowed COPY")
	}
	// Armed: the connection is closed as soon as the server asks for data.
	pgpool.RefuseCopyIn(pc, true)
	_, err = pc.Exec(ctx, "COPY c FROM STDIN").ReadAll()
	if err == nil || !pgpool.CopyInRefused(pc) || !pc.IsClosed() {
		t.Errorf("armed COPY FROM STDIN: err %v, refused %v, closed %v", err, pgpool.CopyInRefused(pc), pc.IsClosed())
	}
}
