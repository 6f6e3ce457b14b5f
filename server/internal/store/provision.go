package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Role suffixes of the three login roles created with each platform database.
const (
	OwnerSuffix  = "_owner"
	WriterSuffix = "_writer"
	ReaderSuffix = "_reader"
)

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

func newPGName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "bk_" + hex.EncodeToString(b[:])
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// CreateDatabase provisions a platform database in accountID: a real
// PostgreSQL database named by a random id, CONNECT revoked from PUBLIC, and
// three login roles (owner, writer, reader) with passwords derived from the
// server secret. It then records the metadata. On any failure it removes
// what it created. Name conflicts are ErrConflict, reserved names
// *ReservedError.
func (s *Store) CreateDatabase(ctx context.Context, accountID, name string, isPrivate bool, limit int64) (*Database, error) {
	if len(s.secret) < 32 {
		return nil, errors.New("store: no server secret (Options.Secret, at least 32 bytes): role passwords derive from it and would be guessable")
	}
	if err := s.CheckNameFree(ctx, accountID, name, ""); err != nil {
		return nil, err
	}
	if err := s.checkDatabaseCap(ctx, s.DB, accountID, false); err != nil {
		return nil, err // before the costly provisioning; checked again below
	}
	pgName := newPGName()
	if err := s.provision(ctx, pgName); err != nil {
		s.dropPhysical(context.WithoutCancel(ctx), pgName)
		return nil, err
	}
	var id string
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		if err := s.checkReservation(ctx, tx, accountID, name); err != nil {
			return err
		}
		if err := s.checkDatabaseCap(ctx, tx, accountID, true); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO databases (account_id, name, pg_name, is_private, storage_limit_bytes)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, accountID, name, pgName, isPrivate, limit).Scan(&id)
	})
	if err != nil {
		s.dropPhysical(context.WithoutCancel(ctx), pgName)
		if isUniqueViolation(err) {
			return nil, ErrConflict
		}
		var re *ReservedError
		var te *TooManyDatabasesError
		if errors.As(err, &re) || errors.As(err, &te) {
			return nil, err
		}
		return nil, fmt.Errorf("record database: %w", err)
	}
	return s.databaseByID(ctx, id)
}

func (s *Store) databaseByID(ctx context.Context, id string) (*Database, error) {
	d, err := scanDB(s.DB.QueryRow(ctx, `SELECT `+dbColumns+` FROM databases d JOIN accounts a ON a.id = d.account_id WHERE d.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return d, err
}

func (s *Store) provision(ctx context.Context, pgName string) error {
	owner, writer, reader := pgName+OwnerSuffix, pgName+WriterSuffix, pgName+ReaderSuffix
	for _, r := range []string{owner, writer, reader} {
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
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("GRANT %s, %s, %s TO CURRENT_USER", ident(owner), ident(writer), ident(reader))); err != nil {
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
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s", ident(pgName), ident(writer), ident(reader)),
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
		fmt.Sprintf("GRANT USAGE ON SCHEMA public TO %s, %s", ident(writer), ident(reader)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE ON SCHEMAS TO %s, %s", ident(owner), ident(writer), ident(reader)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO %s", ident(owner), ident(writer)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %s", ident(owner), ident(writer)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON TABLES TO %s", ident(owner), ident(reader)),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON SEQUENCES TO %s", ident(owner), ident(reader)),
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

// rolesOfD is the SQL list of the three role names of databases row d, with
// roleSuffixArgs as $1..$3.
const rolesOfD = `(d.pg_name || $1, d.pg_name || $2, d.pg_name || $3)`

var roleSuffixArgs = []any{OwnerSuffix, WriterSuffix, ReaderSuffix}

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
	rows, err := s.DB.Query(ctx, `SELECT d.pg_name FROM databases d WHERE d.deleted_at IS NOT NULL
		AND (EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d.pg_name)
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN `+rolesOfD+` OR rolname = d.pg_name))`, roleSuffixArgs...)
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

// dropPhysical drops a PostgreSQL database, its three roles and its group
// role, ignoring objects that do not exist.
func (s *Store) dropPhysical(ctx context.Context, pgName string) error {
	var errs []error
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(pgName))); err != nil {
		errs = append(errs, fmt.Errorf("drop database: %w", err))
	}
	for _, suf := range []string{OwnerSuffix, WriterSuffix, ReaderSuffix, ""} { // "": the group role (lockdown.go)
		if _, err := s.admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident(pgName+suf)); err != nil {
			errs = append(errs, fmt.Errorf("drop role: %w", err))
		}
	}
	return errors.Join(errs...)
}

// DeleteDatabase marks the database deleted, reserves its name for
// ReservationPeriod, and drops the PostgreSQL database and roles. The caller
// closes pools and relayed sessions first.
func (s *Store) DeleteDatabase(ctx context.Context, d *Database) (reservedUntil time.Time, err error) {
	err = s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		tag, err := tx.Exec(ctx, `UPDATE databases SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL`, d.ID)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, ErrNotFound
		}
		return []string{DBTag(d.ID)}, tx.QueryRow(ctx, `INSERT INTO name_reservations (account_id, name_lower, reserved_until)
			VALUES ($1, lower($2), now() + $3::interval)
			ON CONFLICT (account_id, name_lower) DO UPDATE SET reserved_until = EXCLUDED.reserved_until
			RETURNING reserved_until`, d.AccountID, d.Name, fmt.Sprintf("%d hours", int(ReservationPeriod/time.Hour))).Scan(&reservedUntil)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return time.Time{}, err
		}
		return time.Time{}, fmt.Errorf("delete database: %w", err)
	}
	// The metadata row is gone: finish the physical drop even if the
	// caller's request is cancelled now, or the database and its roles
	// would be left behind with nothing pointing at them.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := s.dropPhysical(dctx, d.PGName); err != nil {
		return reservedUntil, err
	}
	return reservedUntil, nil
}

// StorageUsage returns pg_database_size of a platform database (0 when it
// cannot be read).
func (s *Store) StorageUsage(ctx context.Context, pgName string) int64 {
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
	rows, err := s.DB.Query(ctx, `SELECT pg_name FROM databases`)
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return fmt.Errorf("list databases to drop: %w", err)
	}
	var errs []error
	for _, n := range names {
		if err := s.dropPhysical(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	s.DB.Close()
	s.DB = nil
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(s.metaName))); err != nil {
		errs = append(errs, fmt.Errorf("drop metadata database: %w", err))
	}
	s.admin.Close()
	return errors.Join(errs...)
}
