package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/pgcluster"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// tenantConfig is adminURL's connection config moved to where bitd reaches
// tenant roles (the test cluster's Unix socket: its pg_hba.conf refuses
// tenant roles over TCP).
func tenantConfig(t *testing.T, adminURL string) *pgx.ConnConfig {
	t.Helper()
	a, err := pgaddr.Tenant(t.Context(), adminURL, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port, cfg.Fallbacks = a.Host, a.Port, nil
	if a.Unix() {
		cfg.TLSConfig = nil
	}
	return cfg
}

// TestTenantRolesGrouped: provisioning makes the three login roles members
// of bitkit_tenants and of a role named like their database (what
// pg_hba.conf tells them apart by), the admin a member of bitkit_admins,
// and deleting the database drops the group role.
func TestTenantRolesGrouped(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	acct := newUserAccount(t, s, "grouped")
	d, err := s.CreateDatabase(ctx, acct, "g", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
		WHERE g.rolname IN ($1, $2) AND u.rolname IN ($1 || '_owner', $1 || '_writer', $1 || '_reader')`, d.PGName, TenantsRole).Scan(&n)
	if err != nil || n != 6 {
		t.Fatalf("memberships of the login roles in %s and %s: %d, %v; want 6", d.PGName, TenantsRole, n, err)
	}
	var login bool
	if err := s.admin.QueryRow(ctx, `SELECT rolcanlogin FROM pg_roles WHERE rolname = $1`, d.PGName).Scan(&login); err != nil || login {
		t.Fatalf("group role %s: login=%v, %v", d.PGName, login, err)
	}
	var admin bool
	if err := s.admin.QueryRow(ctx, `SELECT pg_has_role(current_user, $1, 'MEMBER')`, AdminsRole).Scan(&admin); err != nil || !admin {
		t.Fatalf("the admin is not a member of %s: %v", AdminsRole, err)
	}
	d.Role = "OWNER"
	if _, err := s.DeleteDatabase(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1 OR rolname LIKE $1 || '\_%'`, d.PGName).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d roles of %s left after the delete (%v)", n, d.PGName, err)
	}
}

// TestTenantCannotLeaveItsDatabase: on the test cluster (locked down by
// scripts/pg-up.sh) a tenant role whose password is known (it set it
// itself) is refused on TCP everywhere, and on the socket everywhere but
// its own database; it cannot see other sessions in pg_stat_activity.
func TestTenantCannotLeaveItsDatabase(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	acct := newUserAccount(t, s, "leaver")
	d, err := s.CreateDatabase(ctx, acct, "mine", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	role := RoleFor(d.PGName, "READER")
	own := tenantConfig(t, testURL(t))
	own.User, own.Password, own.Database = role, secret.RolePassword(testSecret, role), d.PGName
	c, err := pgx.ConnectConfig(ctx, own)
	if err != nil {
		t.Fatalf("the reader on the socket to its own database: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "ALTER ROLE CURRENT_USER PASSWORD 'known-to-the-tenant'"); err != nil {
		t.Fatal(err)
	}
	defer s.admin.Exec(context.Background(), "ALTER ROLE "+ident(role)+" PASSWORD "+quoteLiteral(secret.SCRAMVerifier(secret.RolePassword(testSecret, role))))
	for _, q := range []string{"SELECT count(*) FROM pg_stat_activity", "SELECT count(*) FROM pg_stat_get_activity(NULL)",
		"SELECT count(*) FROM pg_stat_get_backend_idset()"} {
		var pe *pgconn.PgError
		if _, err := c.Exec(ctx, q); !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s: %v; want permission denied (42501)", q, err)
		}
	}
	tcp, err := pgx.ParseConfig(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{d.PGName, "postgres", "template1", s.MetadataDB()} {
		for _, via := range []string{"tcp", "socket"} {
			cfg := tcp.Copy()
			if via == "socket" {
				cfg = own.Copy()
			}
			cfg.User, cfg.Password, cfg.Database = role, "known-to-the-tenant", db
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if via == "socket" && db == d.PGName {
				if err != nil {
					t.Errorf("socket, own database: %v", err)
				} else {
					conn.Close(ctx)
				}
				continue
			}
			var pe *pgconn.PgError
			if err == nil {
				conn.Close(ctx)
				t.Errorf("%s to %s with the tenant-set password: logged in", via, db)
			} else if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "pg_hba.conf rejects") {
				t.Errorf("%s to %s: %v; want pg_hba.conf rejects (28000)", via, db, err)
			}
		}
	}
}

// TestCheckLockdown: the start-up check says a locked-down cluster refuses
// tenant roles, and warns loudly, with the fix, on a cluster whose
// pg_hba.conf lets them in by password; it leaves no probe role behind and
// never logs the probe's password.
func TestCheckLockdown(t *testing.T) {
	t.Parallel()
	var l logBuf
	s := openWith(t, testURL(t), openTest(t).MetadataDB(), "", &l)
	v := s.CheckLockdown(t.Context())
	if !v.Locked || len(v.Open) != 0 || v.Problem != "" || v.HBA != nil {
		t.Fatalf("locked-down test cluster: %+v\n%s", v, l.String())
	}
	if !strings.Contains(l.String(), "level=INFO msg=\"PostgreSQL refuses tenant roles at "+v.Addr) {
		t.Errorf("no info line for a locked cluster:\n%s", l.String())
	}
	var left int
	if err := s.admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'bitkit\_probe\_%' AND rolvaliduntil > now()`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	// Other tests may probe at the same time: their roles are theirs.
	if strings.Contains(l.String(), "cannot drop the lock-down probe role") {
		t.Errorf("probe role not dropped:\n%s", l.String())
	}

	// A throwaway cluster whose pg_hba.conf takes passwords from anyone
	// on loopback (what initdb writes with --auth-host=scram-sha-256).
	c, err := pgcluster.Start(t.Context(), t.TempDir(), filepath.Join(t.TempDir(), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(30 * time.Second) })
	hba := filepath.Join(c.Dir, "pg_hba.conf")
	st, err := os.Stat(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, []byte("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(hba, int(sys.Uid), int(sys.Gid)); err != nil {
		t.Fatal(err)
	}
	su, err := pgx.Connect(t.Context(), c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	if _, err := su.Exec(t.Context(), "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	var lo logBuf
	so := openWith(t, c.URL, "", "", &lo)
	var vo LockdownVerdict
	_ = testwait.Wait(t.Context(), 30*time.Second, func() error { // the reload is asynchronous
		if vo = so.CheckLockdown(t.Context()); vo.Locked {
			return errors.New("still locked")
		}
		return nil
	})
	if vo.Locked || len(vo.Open) != 2 || vo.Problem != "" {
		t.Fatalf("open cluster: %+v\n%s", vo, lo.String())
	}
	wantHBA := []string{"line 1 (local all all the Unix socket scram-sha-256)", "line 2 (host all all 127.0.0.1 scram-sha-256)",
		"no `host all +bitkit_tenants all reject` line"}
	if strings.Join(vo.HBA, "|") != strings.Join(wantHBA, "|") {
		t.Errorf("pg_hba.conf exposures %q, want %q", vo.HBA, wantHBA)
	}
	logs := lo.String()
	if !strings.Contains(logs, "level=WARN msg=\"SECURITY: tenant roles can log in to PostgreSQL directly at "+vo.Addr) ||
		!strings.Contains(logs, "host all +"+TenantsRole+" all reject") {
		t.Errorf("no loud warning with the fix:\n%s", logs)
	}
	if strings.Contains(logs, "SCRAM-SHA-256$") || strings.Contains(logs, "VALID UNTIL") {
		t.Errorf("the log shows the probe's password statement:\n%s", logs)
	}
	if err := su.QueryRow(t.Context(), `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'bitkit\_probe\_%'`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d probe roles left on the throwaway cluster (%v)", left, err)
	}

	// Locked on the admin's address, but an earlier line lets tenant roles
	// in from elsewhere: the probe cannot see it, pg_hba_file_rules can.
	partly := "host all all 10.0.0.0/8 scram-sha-256\n" + strings.SplitN(pgcluster.HBA("bitkit"), "\n", 4)[3]
	if err := os.WriteFile(hba, []byte(partly), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(t.Context(), "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	_ = testwait.Wait(t.Context(), 30*time.Second, func() error {
		if vo = so.CheckLockdown(t.Context()); !vo.Locked {
			return errors.New("not locked yet")
		}
		return nil
	})
	if !vo.Locked || strings.Join(vo.HBA, "|") != "line 1 (host all all 10.0.0.0 scram-sha-256)" {
		t.Fatalf("partly locked cluster: %+v", vo)
	}
	if !strings.Contains(lo.String(), "level=WARN msg=\"SECURITY: pg_hba.conf lets tenant roles log in before it rejects them: line 1 (host all all 10.0.0.0") {
		t.Errorf("no warning naming the line:\n%s", lo.String())
	}
}

// TestLockdownNonSuperuserAdmin: a CREATEROLE admin that is not a superuser
// groups the tenant roles too (so pg_hba.conf refuses them) and is made a
// member of bitkit_admins; the REVOKEs that hide other sessions do nothing
// for it, and bitd's warning says so with the fix.
func TestLockdownNonSuperuserAdmin(t *testing.T) {
	t.Parallel()
	su, role, adminURL := nonSuperuserAdmin(t)
	var log logBuf
	s := openNonSuperuser(t, su, role, adminURL, "bitkit_ldns_"+strings.ToLower(secret.RandomBase62(8)), &log)
	ctx := t.Context()
	d, err := s.CreateDatabase(ctx, newUserAccount(t, s, "ldns"), "g", true, 0)
	if err != nil {
		t.Fatalf("non-superuser admin could not provision: %v", err)
	}
	var grouped int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
		WHERE g.rolname IN ($1, $2) AND u.rolname LIKE $1 || '\_%'`, d.PGName, TenantsRole).Scan(&grouped); err != nil || grouped != 8 {
		t.Fatalf("grouped memberships: %d, %v; want 8 (four login roles in two groups)", grouped, err)
	}
	var member bool
	if err := su.QueryRow(ctx, `SELECT pg_has_role($1, $2, 'MEMBER')`, role, AdminsRole).Scan(&member); err != nil || !member {
		t.Fatalf("the non-superuser admin is not a member of %s (%v)", AdminsRole, err)
	}
	// The admin still logs in over TCP (its +bitkit_admins line comes
	// before the tenants' reject), now that it is a member of tenant roles.
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("the admin, a member of tenant roles, is refused: %v", err)
	}
	c.Close(ctx)
	if logs := log.String(); !strings.Contains(logs, "pg_stat_activity (create large objects") || !strings.Contains(logs, "REVOKE SELECT ON %s FROM PUBLIC") {
		t.Errorf("no warning that pg_stat_activity stays visible, with the fix:\n%s", logs)
	}
}
