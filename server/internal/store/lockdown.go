package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Locking the cluster (docs/bitd.md, "Locking the cluster: no way in but
// through bitd"). Any login role may change its own password (ALTER ROLE
// CURRENT_USER PASSWORD …), so a password is no barrier against a tenant:
// pg_hba.conf must refuse tenant roles everywhere but on a path only bitd
// can take. pg_hba cannot name the roles one by one, so they are grouped:
// every login role of a platform database is a member of TenantsRole (any
// tenant role: "+bitkit_tenants") and of a NOLOGIN role named exactly like
// its PostgreSQL database (so "samerole" matches its own database and no
// other). The group roles hold no privileges; pg_hba tests membership, not
// inherited privileges, so the login roles' NOINHERIT does not matter.
//
// pg_hba.conf's "+group" follows memberships through other roles, and the
// admin is a member of every platform login role (see provision), hence of
// TenantsRole too: the admin's lines must come before the +bitkit_tenants
// ones, or they would refuse the admin as well. bitd makes its admin a
// member of AdminsRole so that one line ("+bitkit_admins") names every
// bitd admin role on the cluster.

// TenantsRole is the NOLOGIN role every platform login role is a member of.
// Its name is fixed: installations sharing a cluster share it.
const TenantsRole = "bitkit_tenants"

// AdminsRole is the NOLOGIN role bitd makes its admin role a member of, for
// pg_hba.conf lines that must match the admin before the tenants' reject
// lines. It holds no privileges.
const AdminsRole = "bitkit_admins"

// probePrefix names the short-lived roles CheckLockdown logs in as.
const probePrefix = "bitkit_probe_"

// ensureGroupRoles creates TenantsRole and AdminsRole when they are
// missing and makes the admin a member of AdminsRole.
func (s *Store) ensureGroupRoles(ctx context.Context) error {
	for _, r := range []string{TenantsRole, AdminsRole} {
		var ok bool
		if err := s.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)`, r).Scan(&ok); err != nil {
			return err
		}
		if ok {
			continue
		}
		_, err := s.admin.Exec(ctx, "CREATE ROLE "+ident(r)+" NOLOGIN NOINHERIT")
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505")) { // not: created meanwhile by another bitd
			return fmt.Errorf("create role %s: %w", r, err)
		}
	}
	var member bool
	if err := s.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
		JOIN pg_catalog.pg_roles g ON g.oid = m.roleid JOIN pg_catalog.pg_roles u ON u.oid = m.member
		WHERE g.rolname = $1 AND u.rolname = current_user)`, AdminsRole).Scan(&member); err != nil {
		return err
	}
	if !member {
		_, err := s.admin.Exec(ctx, "GRANT "+ident(AdminsRole)+" TO CURRENT_USER")
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && pe.Code == "23505") { // not: granted meanwhile by another bitd
			return fmt.Errorf("make the admin a member of %s: %w", AdminsRole, err)
		}
	}
	return nil
}

// groupTenantRoles makes the login roles of pgName members of
// TenantsRole and of a NOLOGIN role named pgName (created when missing).
func (s *Store) groupTenantRoles(ctx context.Context, pgName string) error {
	var exists bool
	if err := s.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)`, pgName).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := s.admin.Exec(ctx, "CREATE ROLE "+ident(pgName)+" NOLOGIN NOINHERIT"); err != nil {
			return fmt.Errorf("create the database's group role: %w", err)
		}
	}
	_, err := s.admin.Exec(ctx, fmt.Sprintf("GRANT %s, %s TO %s, %s, %s, %s", ident(pgName), ident(TenantsRole),
		ident(pgName+OwnerSuffix), ident(pgName+WriterSuffix), ident(pgName+ReaderSuffix), ident(pgName+PublicSuffix)))
	if err != nil {
		return fmt.Errorf("add the database's roles to %s (bitd's admin needs to be a superuser, or on PostgreSQL 16+ "+
			"to hold ADMIN OPTION on it: as a superuser, GRANT %s TO <admin role> WITH ADMIN OPTION): %w", TenantsRole, TenantsRole, err)
	}
	return nil
}

// ensureTenantGroups gives the login roles of every live platform database
// that predates the grouping (or whose grouping failed) their memberships.
// It logs instead of failing Open: a role left out is not refused by a
// locked-down pg_hba.conf, which the warning says.
func (s *Store) ensureTenantGroups(ctx context.Context) {
	if err := s.ensureGroupRoles(ctx); err != nil {
		s.log.Warn("cannot set up the roles "+TenantsRole+" and "+AdminsRole+": a locked-down pg_hba.conf cannot tell tenant roles apart "+
			"(give --database-url a role with CREATEROLE)", "err", err)
		return
	}
	rows, err := s.DB.Query(ctx, `SELECT DISTINCT d.pg_name FROM databases d
		JOIN pg_catalog.pg_roles r ON r.rolname IN `+rolesOfD+`
		WHERE d.deleted_at IS NULL AND (
			NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid AND g.rolname = d.pg_name)
			OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid AND g.rolname = $5))`, append(roleSuffixArgs, TenantsRole)...)
	if err != nil {
		s.log.Warn("cannot check the platform roles' memberships in "+TenantsRole, "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.log.Warn("cannot check the platform roles' memberships in "+TenantsRole, "err", err)
		return
	}
	done := 0
	for _, n := range names {
		if err := s.groupTenantRoles(ctx, n); err != nil {
			s.log.Warn("a platform database's roles are not grouped: a locked-down pg_hba.conf does not refuse them", "database", n, "err", err)
			continue
		}
		done++
	}
	if done > 0 {
		s.log.Info("platform roles grouped for pg_hba.conf ("+TenantsRole+", samerole)", "databases", done)
	}
}

// hideActivitySQL takes from PUBLIC, in the current database, what shows
// other sessions of the cluster: pg_stat_activity and the views and
// functions under it (databases, role names, application_name and client
// addresses of other tenants' sessions), pg_locks (their locks and process
// ids) and pg_stat_database (every database's sessions and transactions). The views' owner (the bootstrap
// superuser) and superusers keep them. Run by a role that holds no grant
// option on them it changes nothing but raises a WARNING (see
// checkRestrictedFunctions, which tells).
const hideActivitySQL = `DO $$DECLARE f regprocedure; v regclass; BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace
		AND (p.proname IN ('pg_stat_get_activity', 'pg_stat_get_progress_info', 'pg_lock_status')
			OR p.proname LIKE 'pg\_stat\_get\_backend\_%' OR p.proname LIKE 'pg\_stat\_get\_db\_%') LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
	FOR v IN SELECT c.oid::regclass FROM pg_catalog.pg_class c WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'v'
		AND (c.relname IN ('pg_stat_activity', 'pg_stat_ssl', 'pg_stat_gssapi', 'pg_locks', 'pg_stat_database', 'pg_stat_database_conflicts')
			OR c.relname LIKE 'pg\_stat\_progress\_%') LOOP
		EXECUTE format('REVOKE SELECT ON %s FROM PUBLIC', v);
	END LOOP;
END$$`

// hideActivityEverywhere runs hideActivitySQL once in every live platform
// database that predates it (a superuser admin only; server_settings
// remembers that it ran).
func (s *Store) hideActivityEverywhere(ctx context.Context) {
	const marker = "activity_hidden"
	var super, done bool
	err := s.DB.QueryRow(ctx, `SELECT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
		EXISTS (SELECT 1 FROM server_settings WHERE name = $1)`, marker).Scan(&super, &done)
	if err != nil || !super || done {
		return
	}
	rows, err := s.DB.Query(ctx, `SELECT d.pg_name FROM databases d WHERE d.deleted_at IS NULL
		AND EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d.pg_name)`)
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		s.log.Warn("cannot list platform databases to hide other sessions from their tenants", "err", err)
		return
	}
	for _, n := range names {
		cfg := s.adminCfg.ConnConfig.Copy()
		cfg.Database = n
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_, err = conn.Exec(ctx, hideActivitySQL)
			conn.Close(context.WithoutCancel(ctx))
		}
		if err != nil {
			s.log.Warn("cannot hide other sessions (pg_stat_activity) from a platform database's tenants; the next start tries again",
				"database", n, "err", err)
			return
		}
	}
	if _, err := s.DB.Exec(ctx, `INSERT INTO server_settings (name, value) VALUES ($1, 'true') ON CONFLICT DO NOTHING`, marker); err != nil {
		s.log.Warn("cannot record that pg_stat_activity is hidden in platform databases", "err", err)
	}
	if len(names) > 0 {
		s.log.Info("pg_stat_activity hidden from the tenants of existing platform databases", "databases", len(names))
	}
}

// LockdownVerdict is what CheckLockdown found.
type LockdownVerdict struct {
	// Addr is the TCP address probed ("" when nothing was probed).
	Addr string
	// Locked: the cluster refused a tenant role at Addr in pg_hba.conf.
	Locked bool
	// Open lists the databases a tenant role with a known password could
	// log in to at Addr (its own, "samerole", and template1).
	Open []string
	// Problem says why the check could not decide ("" when it could).
	Problem string
	// HBA lists the pg_hba.conf lines (as loaded in pg_hba_file_rules:
	// superuser admins only) that let tenant roles log in before a line
	// rejects them; nil when none, or when the rules cannot be read.
	HBA []string
}

// CheckLockdown finds out whether a tenant role that knows its password (it
// may set one itself) can log in to the cluster directly over TCP at the
// admin URL's address, and logs the verdict: Info when pg_hba.conf refuses
// it, a loud Warn with the fix otherwise. It creates a role like a tenant's
// (a member of TenantsRole) with LOGIN and a random password valid for five
// minutes, tries to log in as it to a database of its own name (samerole:
// when the admin URL is loopback) and to template1, and drops the role. An
// authentication that succeeds, even if the database then does not exist
// (3D000 is sent only after authentication), counts as open. When the
// admin URL is a Unix socket nothing is probed. It works for a
// non-superuser admin (CREATEROLE); the probe's password is never logged.
func (s *Store) CheckLockdown(ctx context.Context) LockdownVerdict {
	cc := s.adminCfg.ConnConfig
	if strings.HasPrefix(cc.Host, "/") {
		s.log.Info("bitd reaches PostgreSQL on a Unix socket: the TCP lock-down check is skipped (see docs/bitd.md, \"Locking the cluster\")")
		v := LockdownVerdict{Problem: "the admin URL is a Unix socket", HBA: s.hbaExposures(ctx)}
		if len(v.HBA) > 0 {
			s.logLockdown(v)
		}
		return v
	}
	v := LockdownVerdict{Addr: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Probe roles whose password has long expired were left by a bitd that
	// stopped mid-check.
	_, _ = s.admin.Exec(ctx, `DO $$DECLARE r text; BEGIN
		FOR r IN SELECT rolname FROM pg_catalog.pg_roles WHERE rolname LIKE 'bitkit\_probe\_%' AND rolvaliduntil < now() - interval '1 hour' LOOP
			EXECUTE format('DROP ROLE IF EXISTS %I', r);
		END LOOP;
	END$$`)
	name := probePrefix + strings.TrimPrefix(newPGName(), "bk_")
	pw := secret.RandomBase62(32)
	until := time.Now().UTC().Add(5 * time.Minute).Format(time.RFC3339)
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN NOINHERIT CONNECTION LIMIT 2 PASSWORD %s VALID UNTIL %s",
		ident(name), quoteLiteral(secret.SCRAMVerifier(pw)), quoteLiteral(until))); err != nil {
		v.Problem = "create a probe role: " + scrub(err).Error()
		return s.logLockdown(v)
	}
	defer func() {
		if _, err := s.admin.Exec(context.WithoutCancel(ctx), "DROP ROLE IF EXISTS "+ident(name)); err != nil {
			s.log.Warn("cannot drop the lock-down probe role (its password expires within minutes)", "role", name, "err", err)
		}
	}()
	if _, err := s.admin.Exec(ctx, "GRANT "+ident(TenantsRole)+" TO "+ident(name)); err != nil {
		v.Problem = "make the probe role a member of " + TenantsRole + ": " + scrub(err).Error()
		return s.logLockdown(v)
	}
	dbs := []string{"template1"}
	if loopbackHost(cc.Host) {
		dbs = []string{name, "template1"}
	}
	refused := 0
	for _, db := range dbs {
		pc, err := pgconn.ParseConfig("connect_timeout=10")
		if err != nil {
			v.Problem = err.Error()
			return s.logLockdown(v)
		}
		pc.Host, pc.Port, pc.TLSConfig, pc.Fallbacks = cc.Host, cc.Port, cc.TLSConfig, cc.Fallbacks
		pc.User, pc.Password, pc.Database = name, pw, db
		conn, err := pgconn.ConnectConfig(ctx, pc)
		var pe *pgconn.PgError
		switch {
		case err == nil:
			conn.Close(context.WithoutCancel(ctx))
			v.Open = append(v.Open, db)
		case errors.As(err, &pe) && pe.Code == "3D000":
			v.Open = append(v.Open, db)
		case errors.As(err, &pe) && pe.Code == "28000" && strings.Contains(pe.Message, "pg_hba.conf"):
			refused++
		case errors.As(err, &pe):
			v.Problem = fmt.Sprintf("log in as a probe role to %s: %s (SQLSTATE %s)", db, pe.Message, pe.Code)
		default:
			v.Problem = fmt.Sprintf("log in as a probe role to %s: cannot connect", db)
		}
	}
	v.Locked = refused == len(dbs)
	v.HBA = s.hbaExposures(ctx)
	return s.logLockdown(v)
}

// hbaExposures reads pg_hba_file_rules (superusers only: others get nil)
// and returns, in order, the rules that accept tenant roles ("all" or
// "+bitkit_tenants" users, any method but reject) before the rule of the
// same kind (local, or TCP) that rejects +bitkit_tenants everywhere. Rules
// of the remote-cluster pattern ("samerole +bitkit_tenants" from named
// addresses, see docs/bitd.md) and rules whose database can match no
// platform database (sameuser, replication) are allowed. Note that
// pg_hba_file_rules shows the file on disk, which may not be loaded yet.
func (s *Store) hbaExposures(ctx context.Context) []string {
	var super bool
	if err := s.admin.QueryRow(ctx, `SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || !super {
		return nil
	}
	rows, err := s.admin.Query(ctx, `SELECT line_number, type, database, user_name, coalesce(address, ''), auth_method
		FROM pg_catalog.pg_hba_file_rules WHERE error IS NULL ORDER BY line_number`)
	if err != nil {
		return nil
	}
	type rule struct {
		line              int
		typ, addr, method string
		databases, users  []string
	}
	var rules []rule
	for rows.Next() {
		var r rule
		if err := rows.Scan(&r.line, &r.typ, &r.databases, &r.users, &r.addr, &r.method); err != nil {
			rows.Close()
			return nil
		}
		rules = append(rules, r)
	}
	if rows.Err() != nil {
		return nil
	}
	has := func(l []string, v string) bool {
		for _, x := range l {
			if x == v {
				return true
			}
		}
		return false
	}
	closed := map[bool]bool{} // by "is TCP": a reject of +bitkit_tenants everywhere was seen
	var out []string
	for _, r := range rules {
		tcp := r.typ != "local"
		if closed[tcp] || !(has(r.users, "all") || has(r.users, "+"+TenantsRole)) {
			continue
		}
		if r.method == "reject" {
			if has(r.databases, "all") && (!tcp || r.addr == "all") {
				closed[tcp] = true
			}
			continue
		}
		if has(r.databases, "samerole") && len(r.databases) == 1 && has(r.users, "+"+TenantsRole) && !has(r.users, "all") {
			continue // a tenant's own database only: bitd's path (local) or the remote pattern
		}
		if !has(r.databases, "all") && !has(r.databases, "samerole") && !has(r.databases, "samegroup") &&
			(has(r.databases, "sameuser") || has(r.databases, "replication")) {
			continue
		}
		addr := r.addr
		if !tcp {
			addr = "the Unix socket"
		}
		out = append(out, fmt.Sprintf("line %d (%s %s %s %s %s)", r.line, r.typ, strings.Join(r.databases, ","),
			strings.Join(r.users, ","), addr, r.method))
	}
	if !closed[true] {
		out = append(out, "no `host all +"+TenantsRole+" all reject` line")
	}
	return out
}

func (s *Store) logLockdown(v LockdownVerdict) LockdownVerdict {
	if len(v.HBA) > 0 {
		s.log.Warn("SECURITY: pg_hba.conf lets tenant roles log in before it rejects them: "+strings.Join(v.HBA, "; ")+
			". A tenant may set its own role's password; see docs/bitd.md, \"Locking the cluster: no way in but through bitd\"",
			"addr", v.Addr)
	}
	switch {
	case v.Locked:
		s.log.Info("PostgreSQL refuses tenant roles at "+v.Addr+": they log in only through bitd", "addr", v.Addr)
	case len(v.Open) > 0:
		s.log.Warn("SECURITY: tenant roles can log in to PostgreSQL directly at "+v.Addr+" (databases tried and open: "+
			strings.Join(v.Open, ", ")+"). Any tenant may set its own role's password (ALTER ROLE CURRENT_USER PASSWORD …) "+
			"through the wire proxy, then log in here and keep its access after its keys are revoked or the database is made "+
			"private, reach template1 and postgres, and plant objects in every later database. Fix pg_hba.conf: first the lines "+
			"of bitd's admin (`host all +"+AdminsRole+" <address> scram-sha-256`: bitd makes its admin a member), then "+
			"`local samerole +"+TenantsRole+" trust` (with unix_socket_permissions = 0700), "+
			"`local all +"+TenantsRole+" reject` and `host all +"+TenantsRole+" all reject` before any other line, and reload; "+
			"for a remote cluster see docs/bitd.md, \"Locking the cluster: no way in but through bitd\"",
			"addr", v.Addr)
	default:
		s.log.Warn("cannot tell whether tenant roles can log in to PostgreSQL directly at "+v.Addr+
			": see docs/bitd.md, \"Locking the cluster: no way in but through bitd\"", "addr", v.Addr, "problem", v.Problem)
	}
	return v
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
