package store

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
)

func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		t.Fatal("TEST_DATABASE_URL is not set: export TEST_DATABASE_URL=$(scripts/pg-up.sh)")
	}
	return u
}

// openTest opens a store on a fresh metadata database and drops everything
// it created when the test ends.
func openTest(t *testing.T) *Store {
	t.Helper()
	name := "bitkit_st_" + secret.RandomBase62(10)
	s, err := Open(t.Context(), Options{AdminURL: testURL(t), MetadataDB: name, Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.DropEverything(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := Open(t.Context(), Options{AdminURL: testURL(t), MetadataDB: s.MetadataDB()})
			if err == nil {
				o.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	ms, err := loadMigrations(migrationsFS)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB.QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, len(ms))
	}
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != ms[len(ms)-1].Version {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, ms[len(ms)-1].Version)
	}
}

func TestDatabaseLifecycle(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, "Owner1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "owner1", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("case-insensitive duplicate user: %v", err)
	}
	key, err := s.CreateUserAPIKey(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.PrincipalByAPIKey(ctx, key)
	if err != nil || p.UserID != u.ID || p.AccountName != "Owner1" {
		t.Fatalf("principal %+v, %v", p, err)
	}
	var stored string
	if err := s.DB.QueryRow(ctx, "SELECT hash FROM api_keys").Scan(&stored); err != nil || stored != secret.HashCredential(key) {
		t.Fatalf("stored key %q is not the SHA-256 of the key", stored)
	}
	d, err := s.CreateDatabase(ctx, u.DefaultAccount.ID, "Data", true, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDatabase(ctx, u.DefaultAccount.ID, "data", true, 10); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate database: %v", err)
	}
	// the roles exist with the derived passwords and the documented privileges
	for _, pc := range []struct {
		perm     string
		canWrite bool
	}{{"OWNER", true}, {"WRITER", true}, {"READER", false}} {
		perm, canWrite := pc.perm, pc.canWrite
		role := RoleFor(d.PGName, perm)
		cfg := tenantConfig(t, testURL(t))
		cfg.User, cfg.Password, cfg.Database = role, secret.RolePassword(s.secret, role), d.PGName
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect as %s: %v", perm, err)
		}
		if perm == "OWNER" {
			if _, err := c.Exec(ctx, "CREATE TABLE t (id serial, v int)"); err != nil {
				t.Fatal(err)
			}
		} else if _, err := c.Exec(ctx, "CREATE TABLE x (v int)"); err == nil {
			t.Fatalf("%s could create a table", perm)
		}
		_, err = c.Exec(ctx, "INSERT INTO t (v) VALUES (1)")
		if (err == nil) != canWrite {
			t.Fatalf("%s insert: %v, want write=%v", perm, err, canWrite)
		}
		if _, err := c.Exec(ctx, "SELECT * FROM t"); err != nil {
			t.Fatalf("%s select: %v", perm, err)
		}
		// Large objects are storage too: a reader (any signed-in user, on
		// a public database) must not create them.
		_, err = c.Exec(ctx, `SELECT lo_from_bytea(0, '\x00ff'::bytea)`)
		if (err == nil) != canWrite {
			t.Fatalf("%s lo_from_bytea: %v, want allowed=%v", perm, err, canWrite)
		}
		// Arbitrary WAL records fill the cluster's disk, not the database's.
		if _, err := c.Exec(ctx, `SELECT pg_logical_emit_message(false, 'p', 'x')`); err == nil {
			t.Fatalf("%s could write WAL with pg_logical_emit_message", perm)
		}
		c.Close(ctx)
	}
	// PUBLIC cannot connect: a fresh role without grants is refused
	if _, err := s.admin.Exec(ctx, "CREATE ROLE "+ident(d.PGName+"_probe")+" LOGIN PASSWORD 'probe-pw'"); err != nil {
		t.Fatal(err)
	}
	defer s.admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident(d.PGName+"_probe"))
	cfg, _ := pgx.ParseConfig(testURL(t))
	cfg.User, cfg.Password, cfg.Database = d.PGName+"_probe", "probe-pw", d.PGName
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatal("a role without grants could connect")
	}
	d.Role = "OWNER"
	until, err := s.DeleteDatabase(ctx, d)
	if err != nil || until.IsZero() {
		t.Fatalf("delete: %v", err)
	}
	var re *ReservedError
	if _, err := s.CreateDatabase(ctx, u.DefaultAccount.ID, "DATA", true, 0); !errors.As(err, &re) || !re.Until.Equal(until) {
		t.Fatalf("reuse of a deleted name: %v", err)
	}
	var n int
	if err := s.admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", d.PGName+"\\_%").Scan(&n); err != nil || n != 1 {
		t.Fatalf("roles left after delete: %d (only the probe should remain), %v", n, err)
	}
}

// TestMetadataDatabaseClosedToPublic checks that a platform role (which
// could learn its own password by changing it) cannot connect to the
// metadata database.
func TestMetadataDatabaseClosedToPublic(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	var connect, temp bool
	if err := s.admin.QueryRow(t.Context(), `SELECT has_database_privilege('public', $1, 'CONNECT'), has_database_privilege('public', $1, 'TEMP')`,
		s.MetadataDB()).Scan(&connect, &temp); err != nil {
		t.Fatal(err)
	}
	if connect || temp {
		t.Errorf("PUBLIC on the metadata database: CONNECT %v, TEMP %v; want neither", connect, temp)
	}
}

// TestServerSecretMustMatch checks that a bitd with another server secret
// cannot open a metadata database set up with the first one.
func TestServerSecretMustMatch(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for _, tc := range []struct {
		name   string
		secret []byte
		ok     bool
	}{
		{"same", s.secret, true},
		{"none (admin tools)", nil, true},
		{"other", []byte("another-secret-0123456789abcdef0123"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := Open(t.Context(), Options{AdminURL: testURL(t), MetadataDB: s.MetadataDB(), Secret: tc.secret, MustExist: true})
			if err == nil {
				o.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("Open = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "BITD_SECRET") {
				t.Errorf("error does not say how to fix it: %v", err)
			}
		})
	}
}

// TestCreateDatabaseNeedsSecret checks that a Store opened without the
// server secret (as admin tools do) provisions nothing: role passwords
// would be HMACs under an empty key.
func TestCreateDatabaseNeedsSecret(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	o, err := Open(t.Context(), Options{AdminURL: testURL(t), MetadataDB: s.MetadataDB(), MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	u, err := o.CreateUser(t.Context(), "nosecret", "")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := o.CreateDatabase(t.Context(), u.DefaultAccount.ID, "db", true, 0); err == nil {
		t.Fatalf("CreateDatabase without a secret created %s", d.PGName)
	}
	var n int
	if err := o.DB.QueryRow(t.Context(), "SELECT count(*) FROM databases").Scan(&n); err != nil || n != 0 {
		t.Errorf("databases recorded: %d, %v", n, err)
	}
}
