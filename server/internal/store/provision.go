package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Role suffixes of the login roles created with each platform database:
// one per audience. Public readers (signed-in callers whose only access is
// that the database is public) get a role of their own, apart from READER
// collaborators and READER service accounts, with the same read-only
// grants: sessions of one role can read each other's query text in
// pg_stat_activity, sessions of different roles cannot.
const (
	OwnerSuffix  = "_owner"
	WriterSuffix = "_writer"
	ReaderSuffix = "_reader"
	PublicSuffix = "_public"
)

// loginSuffixes are the suffixes of every login role of a platform
// database.
var loginSuffixes = []string{OwnerSuffix, WriterSuffix, ReaderSuffix, PublicSuffix}

// RoleFor maps a permission (OWNER/ADMIN/WRITER/READER) to the login role of
// PostgreSQL database pgName.
func RoleFor(pgName, permission string) string {
	switch permission {
	case "OWNER", "ADMIN":
		return pgName + OwnerSuffix
	case "WRITER":
		return pgName + WriterSuffix
	default:
		return pgName + ReaderSuffix
	}
}

// LoginRole is the login role a caller gets on PostgreSQL database pgName:
// RoleFor(permission), or the public readers' role when public (the
// caller's only access is that the database is public).
func LoginRole(pgName, permission string, public bool) string {
	if public {
		return pgName + PublicSuffix
	}
	return RoleFor(pgName, permission)
}

// ReadOnlyRole reports whether role is a reader or public-reader login
// role of a platform database.
func ReadOnlyRole(role string) bool {
	return strings.HasSuffix(role, ReaderSuffix) || strings.HasSuffix(role, PublicSuffix)
}

func newPGName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "bk_" + hex.EncodeToString(b[:])
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (s *Store) databaseByID(ctx context.Context, id string) (*Database, error) {
	d, err := scanDB(s.DB.QueryRow(ctx, `SELECT `+dbColumns+` FROM databases d JOIN accounts a ON a.id = d.account_id WHERE d.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return d, err
}

func (s *Store) provision(ctx context.Context, pgName string) error {
	owner, writer, reader, public := pgName+OwnerSuffix, pgName+WriterSuffix, pgName+ReaderSuffix, pgName+PublicSuffix
	for _, r := range []string{owner, writer, reader, public} {
		q := fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION CONNECTION LIMIT %d PASSWORD %s",
			ident(r), s.connLimit, quoteLiteral(secret.SCRAMVerifier(secret.RolePassword(s.secret, r))))
		if _, err := s.admin.Exec(ctx, q); err != nil {
			return fmt.Errorf("create role for new database: %w", scrub(err))
		}
	}
	// The admin must be able to act as owner (PostgreSQL 16+ does not
	// grant that implicitly to a CREATEROLE non-superuser), and to end the
	// writer's and reader's sessions: DROP DATABASE … WITH (FORCE) by an
	// admin that is not a superuser fails while a session of a role it is
	// not a member of is connected (see ensureAdminMemberships).
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("GRANT %s, %s, %s, %s TO CURRENT_USER", ident(owner), ident(writer), ident(reader), ident(public))); err != nil {
		return fmt.Errorf("grant database roles to admin: %w", err)
	}
	// What a locked-down pg_hba.conf tells tenant roles apart by (see
	// lockdown.go).
	if err := s.groupTenantRoles(ctx, pgName); err != nil {
		return err
	}
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", ident(pgName), ident(owner))); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	stmts := []string{
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", ident(pgName)),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s, %s", ident(pgName), ident(writer), ident(reader), ident(public)),
	}
	for _, q := range stmts {
		if _, err := s.admin.Exec(ctx, q); err != nil {
			return fmt.Errorf("set database privileges: %w", err)
		}
	}
	// Before any tenant session starts: the setting applies at connection.
	s.setTempFileLimit(ctx, pgName)
	cfg := s.adminCfg.ConnConfig.Copy()
	cfg.Database = pgName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to new database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Schema public belongs to pg_database_owner (PostgreSQL 15+), whose
	// privileges reach the database owner only if it inherits: a
	// non-superuser admin (a member of the NOINHERIT owner role) may take
	// the schema over only while the owner role is INHERIT, for this one
	// statement. No tenant can log in yet (nothing is recorded).
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s INHERIT", ident(owner))); err != nil {
		return fmt.Errorf("set schema owner: %w", err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER SCHEMA public OWNER TO %s", ident(owner))); err != nil {
		return fmt.Errorf("set schema owner: %w", err)
	}
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s NOINHERIT", ident(owner))); err != nil {
		return fmt.Errorf("set schema owner: %w", err)
	}
	inner := []string{
		"REVOKE ALL ON SCHEMA public FROM PUBLIC",
		fmt.Sprintf("GRANT USAGE ON SCHEMA public TO %s, %s, %s", ident(writer), ident(reader), ident(public)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE ON SCHEMAS TO %s, %s, %s", ident(owner), ident(writer), ident(reader), ident(public)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO %s", ident(owner), ident(writer)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %s", ident(owner), ident(writer)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON TABLES TO %s, %s", ident(owner), ident(reader), ident(public)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON SEQUENCES TO %s, %s", ident(owner), ident(reader), ident(public)),
		// Every role may create large objects and write WAL records by
		// default: keep large objects (storage) to owner and writer, and
		// WAL messages (the cluster's disk) to nobody. Signatures vary by
		// PostgreSQL version, so the functions are found by name.
		fmt.Sprintf(`DO $$DECLARE f regprocedure; BEGIN
			FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace
				AND p.proname IN ('lo_creat', 'lo_create', 'lo_from_bytea', 'pg_logical_emit_message') LOOP
				EXECUTE format('REVOKE EXECUTE ON FUNCTION %%s FROM PUBLIC', f);
				IF f::text NOT LIKE 'pg_logical_emit_message%%' THEN
					EXECUTE format('GRANT EXECUTE ON FUNCTION %%s TO %%s', f, %s);
				END IF;
			END LOOP;
		END$$`, quoteLiteral(ident(owner)+", "+ident(writer))),
		// Other tenants' sessions (databases, roles, application_name).
		hideActivitySQL,
	}
	for _, q := range inner {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("set schema privileges: %w", err)
		}
	}
	s.checkRestrictedFunctions(ctx, conn, pgName, reader)
	return nil
}

// rolesOfD is the SQL list of the four login role names of databases row d,
// with roleSuffixArgs as $1..$4.
const rolesOfD = `(d.pg_name || $1, d.pg_name || $2, d.pg_name || $3, d.pg_name || $4)`

var roleSuffixArgs = []any{OwnerSuffix, WriterSuffix, ReaderSuffix, PublicSuffix}

// ensureAdminMemberships makes the admin a member of the writer and reader
// roles of every platform database that predates that grant in provision
// (live ones, and deleted ones whose drop failed), so that deleting one of
// those databases can end its sessions.
// It changes nothing for a superuser admin (who may end any session) and
// logs instead of failing Open.
func (s *Store) ensureAdminMemberships(ctx context.Context) {
	rows, err := s.DB.Query(ctx, `SELECT r.rolname FROM databases d
		JOIN pg_catalog.pg_roles r ON r.rolname IN `+rolesOfD+`
		WHERE NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
		AND NOT pg_has_role(current_user, r.oid, 'MEMBER')`, roleSuffixArgs...)
	if err != nil {
		s.log.Warn("cannot check the admin's memberships in platform roles", "err", err)
		return
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.log.Warn("cannot check the admin's memberships in platform roles", "err", err)
		return
	}
	for _, r := range roles {
		if _, err := s.admin.Exec(ctx, "GRANT "+ident(r)+" TO CURRENT_USER"); err != nil {
			s.log.Warn("cannot make the admin a member of a platform role: deleting its database fails while the role has sessions",
				"role", r, "err", err)
		}
	}
	if len(roles) > 0 {
		s.log.Info("admin made a member of platform roles", "roles", len(roles))
	}
}

// finishDeletes drops what is left of databases that were deleted (their
// metadata row says so) but whose PostgreSQL database or roles are still
// there because the drop failed (bitd stopped, or the cluster refused).
// Only databases this metadata store recorded are touched. Errors are
// logged; the next start tries again.
func (s *Store) finishDeletes(ctx context.Context) {
	rows, err := s.DB.Query(ctx, `SELECT d.pg_name FROM databases d WHERE d.deleted_at IS NOT NULL AND d.placement = 'default'
		AND (EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d.pg_name)
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN `+rolesOfD+` OR rolname = d.pg_name
				OR rolname = d.pg_name || $5))`, append(roleSuffixArgs, FrozenSuffix)...)
	if err != nil {
		s.log.Warn("cannot look for deleted databases left behind", "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.log.Warn("cannot look for deleted databases left behind", "err", err)
		return
	}
	for _, n := range names {
		if err := s.dropPhysical(ctx, n); err != nil {
			s.log.Warn("a deleted database is still there: dropping it failed again", "database", n, "err", err)
			continue
		}
		s.log.Info("dropped a deleted database left behind by an earlier failed drop", "database", n)
	}
}

// restrictedFunctions are the functions provisioning takes from PUBLIC.
const restrictedFunctions = `'lo_creat', 'lo_create', 'lo_from_bytea', 'pg_logical_emit_message'`

// checkRestrictedFunctions verifies that the reader role of a new database
// cannot run the restricted functions. REVOKE by a role that holds no grant
// option (an admin that is not a superuser: the functions belong to the
// bootstrap superuser) does nothing but raise a WARNING, so the provisioning
// above can silently leave them open; bitd then says so, once per process,
// with the fix.
func (s *Store) checkRestrictedFunctions(ctx context.Context, conn *pgx.Conn, pgName, reader string) {
	var open string
	err := conn.QueryRow(ctx, `SELECT concat_ws(', ', nullif(string_agg(DISTINCT p.proname, ', ' ORDER BY p.proname), ''),
			CASE WHEN has_table_privilege($1, 'pg_catalog.pg_stat_activity', 'SELECT') THEN 'pg_stat_activity' END)
		FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace
		AND p.proname IN (`+restrictedFunctions+`) AND has_function_privilege($1, p.oid, 'EXECUTE')`, reader).Scan(&open)
	if err != nil {
		s.log.Warn("could not check the function privileges of a new database", "database", pgName, "err", err)
		return
	}
	if open == "" || s.fnWarned.Swap(true) {
		return
	}
	s.log.Warn("readers of platform databases can run "+open+" (create large objects; write WAL records, which fill the "+
		"cluster's disk; see other tenants' sessions): bitd's admin role is not a superuser, so provisioning could not revoke them from PUBLIC. "+
		"Fix: give --database-url a superuser, or as a superuser run, in template1 (databases created afterwards "+
		"inherit it) and in every existing platform database: "+
		"DO $$DECLARE f regprocedure; BEGIN FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace "+
		"AND proname IN ("+restrictedFunctions+") LOOP EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f); END LOOP; END$$ "+
		"and then "+strings.Join(strings.Fields(hideActivitySQL), " "),
		"database", pgName)
}

// scrub drops the statement text from role errors (it holds a password
// verifier: not the password, but nothing an error should carry).
func scrub(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return errors.New("role statement failed")
}

// dropPhysical drops a PostgreSQL database, its login roles, its group role
// and its quota role (quota.go), ignoring objects that do not exist.
func (s *Store) dropPhysical(ctx context.Context, pgName string) error {
	var errs []error
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(pgName))); err != nil {
		errs = append(errs, fmt.Errorf("drop database: %w", err))
	}
	for _, suf := range append(append([]string{}, loginSuffixes...), FrozenSuffix, "") { // "": the group role (lockdown.go)
		if _, err := s.admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident(pgName+suf)); err != nil {
			errs = append(errs, fmt.Errorf("drop role: %w", err))
		}
	}
	return errors.Join(errs...)
}

// StorageUsage returns pg_database_size of a platform database (0 when it
// cannot be read).
func (s *Store) StorageUsage(ctx context.Context, pgName string) int64 {
	if s.root == nil {
		if p, err := s.PlacementOf(ctx, pgName); err != nil {
			return 0
		} else if sib, err := s.on(ctx, p); err != nil {
			return 0
		} else if sib != s {
			return sib.StorageUsage(ctx, pgName)
		}
	}
	var n int64
	if err := s.admin.QueryRow(ctx, `SELECT pg_database_size($1)`, pgName).Scan(&n); err != nil {
		return 0
	}
	return n
}

// DropEverything drops every platform database recorded in the metadata
// store with its roles, then the metadata database itself (for --ephemeral).
// The Store is closed afterwards.
func (s *Store) DropEverything(ctx context.Context) error {
	rows, err := s.DB.Query(ctx, `SELECT pg_name, placement FROM databases UNION SELECT pg_name, placement FROM db_stock`) // db_stock: stock.go
	var names [][2]string
	if err == nil {
		names, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var n [2]string
			err := r.Scan(&n[0], &n[1])
			return n, err
		})
	}
	if err != nil {
		return fmt.Errorf("list databases to drop: %w", err)
	}
	var errs []error
	for _, n := range names {
		if err := s.dropOn(ctx, n[1], n[0]); err != nil {
			errs = append(errs, err)
		}
	}
	s.DB.Close()
	s.DB = nil
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(s.metaName))); err != nil {
		errs = append(errs, fmt.Errorf("drop metadata database: %w", err))
	}
	s.closeClusters()
	s.admin.Close()
	return errors.Join(errs...)
}

// ensurePublicRoles gives every live platform database created before
// public readers had a role of their own its public role: created like the
// others, with the reader role's privileges mirrored (CONNECT, USAGE on the
// schemas and SELECT on the relations the reader may use) and the owner's
// default privileges extended to it. A database whose grants fail loses the
// role again, so the next start tries again. Errors are logged, never
// returned: until then its public readers are refused (the role is missing)
// rather than given the readers' role.
func (s *Store) ensurePublicRoles(ctx context.Context) {
	if len(s.secret) < 32 {
		return // admin tools: role passwords derive from the secret
	}
	rows, err := s.DB.Query(ctx, `SELECT d.pg_name FROM databases d WHERE d.deleted_at IS NULL
		AND EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d.pg_name)
		AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = d.pg_name || $1)`, PublicSuffix)
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		s.log.Warn("cannot look for platform databases without a public readers' role", "err", err)
		return
	}
	done := 0
	for _, n := range names {
		if err := s.addPublicRole(ctx, n); err != nil {
			s.log.Warn("a platform database has no public readers' role yet (its public readers are refused); the next start tries again",
				"database", n, "err", err)
			_, _ = s.admin.Exec(context.WithoutCancel(ctx), "DROP ROLE IF EXISTS "+ident(n+PublicSuffix))
			continue
		}
		done++
	}
	if done > 0 {
		s.log.Info("public readers' roles added to existing platform databases", "databases", done)
	}
}

// mirrorReaderSQL grants the public role ($2 as an identifier in the
// format) what the reader role (the first) may use in the current
// database.
const mirrorReaderSQL = `DO $$DECLARE r text; BEGIN
	FOR r IN SELECT n.oid::regnamespace::text FROM pg_catalog.pg_namespace n
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
		AND has_schema_privilege(%[1]s, n.oid, 'USAGE') LOOP
		EXECUTE format('GRANT USAGE ON SCHEMA %%s TO %%I', r, %[2]s);
	END LOOP;
	FOR r IN SELECT c.oid::regclass::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
		AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND has_table_privilege(%[1]s, c.oid, 'SELECT') LOOP
		EXECUTE format('GRANT SELECT ON %%s TO %%I', r, %[2]s);
	END LOOP;
END$$`

func (s *Store) addPublicRole(ctx context.Context, pgName string) error {
	owner, reader, public := pgName+OwnerSuffix, pgName+ReaderSuffix, pgName+PublicSuffix
	q := fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION CONNECTION LIMIT %d PASSWORD %s",
		ident(public), s.connLimit, quoteLiteral(secret.SCRAMVerifier(secret.RolePassword(s.secret, public))))
	if _, err := s.admin.Exec(ctx, q); err != nil {
		return fmt.Errorf("create role: %w", scrub(err))
	}
	if _, err := s.admin.Exec(ctx, "GRANT "+ident(public)+" TO CURRENT_USER"); err != nil {
		return fmt.Errorf("grant the role to the admin: %w", err)
	}
	if err := s.groupTenantRoles(ctx, pgName); err != nil {
		return err
	}
	cfg := s.adminCfg.ConnConfig.Copy()
	cfg.Database = pgName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// As the owner: the objects are the owner's, and a non-superuser
	// admin holds no grant option on them. The owner may be frozen
	// (quota.go): then the frozen role owns them.
	var objOwner string
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = current_database()`).Scan(&objOwner); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			"SET LOCAL ROLE " + ident(objOwner),
			fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", ident(pgName), ident(public)),
			fmt.Sprintf(mirrorReaderSQL, quoteLiteral(reader), quoteLiteral(public)),
			"RESET ROLE",
			fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE ON SCHEMAS TO %s", ident(owner), ident(public)),
			fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON TABLES TO %s", ident(owner), ident(public)),
			fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON SEQUENCES TO %s", ident(owner), ident(public)),
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("grant the reader's privileges: %w", err)
			}
		}
		return nil
	})
}
