package pgpool_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
)

// TestRoleTamperingHeals checks that SQL run as a pool's login role cannot
// lock bitd out of the database for good: a role that changed its own
// password or session defaults is reset after one failed connection.
func TestRoleTamperingHeals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper []string
	}{
		{"password", []string{"ALTER ROLE CURRENT_USER PASSWORD 'tampered-by-sql'"}},
		{"settings", []string{"ALTER ROLE CURRENT_USER SET statement_timeout = 1", "ALTER ROLE CURRENT_USER SET search_path = 'nowhere'"}},
		{"settings in database", []string{"DO $$BEGIN EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I SET statement_timeout = 1', current_database()); END$$"}},
		{"password and settings", []string{"ALTER ROLE CURRENT_USER SET idle_session_timeout = 1", "ALTER ROLE CURRENT_USER PASSWORD 'tampered-by-sql'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A password only matters where pg_hba checks it: those cases
			// use a role of their own (passwordRole), the others a platform
			// database as provisioned.
			var adminURL, db, role string
			var sec []byte
			var roleURL func() string
			if strings.Contains(tc.name, "password") {
				adminURL, db, role, sec = passwordRole(t)
				roleURL = func() string {
					u, _ := url.Parse(adminURL)
					u.User = url.UserPassword(role, secret.RolePassword(sec, role))
					u.Path = "/" + db
					return u.String()
				}
			} else {
				d := pgtest.New(t)
				adminURL, db, role, sec = d.ClusterURL, d.Name, d.Owner, d.Secret
				roleURL = func() string { return d.URL(role) } // where bitd logs tenant roles in
			}
			m := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec, MaxConnsPerPool: 1})
			defer m.Close()
			ctx := t.Context()
			p, err := m.Pool(ctx, db, role)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.tamper {
				if _, err := p.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			p.Reset() // new connections log in from scratch
			var ok int
			err = p.QueryRow(ctx, "SELECT 1").Scan(&ok)
			if err == nil {
				t.Fatal("first connection after tampering worked: the test did not tamper")
			}
			var timeout, path string
			if err := p.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('search_path')").Scan(&timeout, &path); err != nil {
				t.Fatalf("second connection after tampering: %v", err)
			}
			if timeout != "0" || path != `"$user", public` {
				t.Errorf("settings after repair: statement_timeout %q, search_path %q", timeout, path)
			}
			// The role logs in with the derived password again, outside the pool too.
			c, err := pgx.Connect(ctx, roleURL())

			if err != nil {
				t.Fatalf("log in with the derived password after repair: %v", err)
			}
			var n int
			if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = current_user`).Scan(&n); err != nil || n != 0 {
				t.Errorf("role settings left after repair: %d (%v)", n, err)
			}
			c.Close(context.Background())
		})
	}
}
