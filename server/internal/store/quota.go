package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Storage quotas (docs/bitd.md, "Storage quotas"). A platform database over
// its storage_limit_bytes is frozen by PostgreSQL's own privileges, not by
// inspecting SQL:
//
//   - everything its login roles own (tables, schemas, functions, large
//     objects, the database itself) is reassigned to a NOLOGIN role named
//     pgName+FrozenSuffix that no tenant role is a member of, so no tenant
//     role is the owner of anything: an owner's privileges cannot be taken
//     from it, a non-owner's can;
//   - INSERT and UPDATE on every relation, UPDATE on every large object
//     and CREATE on every schema are revoked from every grantee (PUBLIC,
//     the tenant's roles, group roles they could SET ROLE to, the frozen
//     role itself: rules act with the table owner's privileges), CREATE
//     and TEMPORARY on the database from every grantee but the frozen role
//     (which bitd's admin acts as: ALTER SCHEMA … OWNER needs it), and
//     EXECUTE on the large-object creating functions from the owner and
//     writer roles;
//   - SECURITY DEFINER functions become SECURITY INVOKER, so no function
//     runs as the frozen role on a tenant's behalf;
//   - the owner login role is granted CONNECT, USAGE on the schemas and
//     SELECT, DELETE and TRUNCATE on the relations (and SELECT on large
//     objects), so reads and deletes keep working, and DropHelper, a
//     SECURITY DEFINER function of the frozen role, for DROP.
//
// The sessions of the owner and writer roles that are running a statement
// or inside a transaction are ended when a database is frozen, so that a
// statement already running (privileges are checked when a statement
// starts) stops growing it. Thawing reassigns everything back
// to the owner role and replays the grants saved at freezing
// (quota_freezes.saved). The database's owner says whether it is frozen.

// FrozenSuffix ends the name of the NOLOGIN role that owns a frozen
// database's objects.
const FrozenSuffix = "_frozen"

// ThawPercent: a frozen database thaws when its size is at most this share
// of its limit (hysteresis: it does not flap around the limit).
const ThawPercent = 95

// QuotaState is one live platform database's storage and quota state.
type QuotaState struct {
	DatabaseID string
	PGName     string
	// LimitBytes is storage_limit_bytes (0: no limit).
	LimitBytes int64
	// UsageBytes is pg_database_size now.
	UsageBytes int64
	// Frozen: the frozen role owns the database.
	Frozen bool
	// Placement is the cluster that holds the database ("" or
	// DefaultCluster: the default one).
	Placement string
}

// Over says the database is over its limit.
func (q QuotaState) Over() bool { return q.LimitBytes > 0 && q.UsageBytes > q.LimitBytes }

// ThawBelow is the size at or under which a frozen database thaws.
func (q QuotaState) ThawBelow() int64 { return q.LimitBytes / 100 * ThawPercent }

// CanThaw says a frozen database may thaw.
func (q QuotaState) CanThaw() bool { return q.LimitBytes <= 0 || q.UsageBytes <= q.ThawBelow() }

// QuotaStates measures every live platform database (pg_database_size)
// and reports whether it is frozen. Databases whose PostgreSQL database is
// missing are left out.
func (s *Store) QuotaStates(ctx context.Context) ([]QuotaState, error) {
	rows, err := s.DB.Query(ctx, `SELECT d.id, d.pg_name, d.storage_limit_bytes, coalesce(pg_catalog.pg_database_size(pd.oid), 0),
			pg_catalog.pg_get_userbyid(pd.datdba) = d.pg_name || $1
		FROM databases d JOIN pg_catalog.pg_database pd ON pd.datname = d.pg_name
		WHERE d.deleted_at IS NULL ORDER BY d.pg_name`, FrozenSuffix)
	if err != nil {
		return nil, fmt.Errorf("measure databases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QuotaState, error) {
		var q QuotaState
		err := r.Scan(&q.DatabaseID, &q.PGName, &q.LimitBytes, &q.UsageBytes, &q.Frozen)
		return q, err
	})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3D000" { // dropped while measured: the next pass skips it
			return nil, nil
		}
		return nil, fmt.Errorf("measure databases: %w", err)
	}
	others, err := s.otherQuotaStates(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, others...), nil
}

// QuotaState reports the storage state of one live database by id.
func (s *Store) QuotaState(ctx context.Context, databaseID string) (QuotaState, error) {
	var q QuotaState
	if sib, placement, err := s.onDatabase(ctx, databaseID); err != nil {
		return q, err
	} else if sib != s {
		return sib.quotaStateOn(ctx, placement, databaseID)
	}
	err := s.DB.QueryRow(ctx, `SELECT d.id, d.pg_name, d.storage_limit_bytes, coalesce(pg_catalog.pg_database_size(pd.oid), 0),
			pg_catalog.pg_get_userbyid(pd.datdba) = d.pg_name || $1
		FROM databases d JOIN pg_catalog.pg_database pd ON pd.datname = d.pg_name
		WHERE d.deleted_at IS NULL AND d.id = $2`, FrozenSuffix, databaseID).Scan(&q.DatabaseID, &q.PGName, &q.LimitBytes, &q.UsageBytes, &q.Frozen)
	if errors.Is(err, pgx.ErrNoRows) {
		return q, ErrNotFound
	}
	return q, err
}

// nonSystem is the condition on a namespace row n for the tenant's schemas
// (pg_temp_N and pg_toast_N included: temporary tables of open sessions).
const nonSystem = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`

// persistent excludes the temporary schemas of sessions (pg_temp_N,
// pg_toast_temp_N): other sessions' temporary objects are out of reach,
// and the freeze ends the sessions that own some.
const persistent = ` AND n.nspname NOT LIKE 'pg\_temp\_%%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%%'`

// grantee renders aclexplode's grantee a.
const grantee = `CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END`

// savedPrivilegesSQL lists, in the current database, the statements that
// give back what freezing takes: the growth privileges of every grantee
// and SECURITY DEFINER. $1 is the database's owner login role.
const savedPrivilegesSQL = `
SELECT format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, c.oid::regclass, ` + grantee + `,
		CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
	FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
		aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
	WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + nonSystem + ` AND n.nspname NOT LIKE 'pg\_temp\_%'
	AND a.privilege_type IN ('INSERT', 'UPDATE')
UNION ALL
SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', a.privilege_type, att.attname, c.oid::regclass, ` + grantee + `,
		CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
	FROM pg_catalog.pg_attribute att JOIN pg_catalog.pg_class c ON c.oid = att.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, aclexplode(att.attacl) a
	WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped
	AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + nonSystem + ` AND n.nspname NOT LIKE 'pg\_temp\_%'
	AND a.privilege_type IN ('INSERT', 'UPDATE')
UNION ALL
SELECT format('GRANT CREATE ON SCHEMA %I TO %s%s', n.nspname, ` + grantee + `,
		CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
	FROM pg_catalog.pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
	WHERE ` + nonSystem + ` AND n.nspname NOT LIKE 'pg\_t%' AND a.privilege_type = 'CREATE'
UNION ALL
SELECT format('GRANT %s ON DATABASE %I TO %s%s', a.privilege_type, d.datname, ` + grantee + `,
		CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
	FROM pg_catalog.pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
	WHERE d.datname = current_database() AND a.privilege_type IN ('CREATE', 'TEMPORARY')
UNION ALL
SELECT format('GRANT UPDATE ON LARGE OBJECT %s TO %s%s', l.oid, ` + grantee + `,
		CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
	FROM pg_catalog.pg_largeobject_metadata l, aclexplode(coalesce(l.lomacl, acldefault('L', l.lomowner))) a
	WHERE a.privilege_type = 'UPDATE'
UNION ALL
SELECT format('ALTER ROUTINE %s SECURITY DEFINER', p.oid::regprocedure)
	FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	WHERE ` + nonSystem + persistent + ` AND p.prosecdef`

// revokeGrowthSQL takes, in the current database and as the frozen role
// (which owns everything by then), every privilege savedPrivilegesSQL
// lists from every grantee, turns SECURITY DEFINER off, and grants the
// owner login role (%[1]s, a literal) what reading and deleting need.
const revokeGrowthSQL = `DO $$DECLARE r record; o text := %[1]s; BEGIN
	FOR r IN SELECT c.oid::regclass AS obj, ` + grantee + ` AS who
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
			aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + nonSystem + persistent + ` AND a.privilege_type IN ('INSERT', 'UPDATE') LOOP
		EXECUTE format('REVOKE INSERT, UPDATE ON TABLE %%s FROM %%s CASCADE', r.obj, r.who);
	END LOOP;
	FOR r IN SELECT DISTINCT c.oid::regclass AS obj, ` + grantee + ` AS who
		FROM pg_catalog.pg_attribute att JOIN pg_catalog.pg_class c ON c.oid = att.attrelid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, aclexplode(att.attacl) a
		WHERE att.attacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + nonSystem + persistent + `
		AND a.privilege_type IN ('INSERT', 'UPDATE') LOOP
		EXECUTE format('REVOKE INSERT, UPDATE ON TABLE %%s FROM %%s CASCADE', r.obj, r.who); -- columns too
	END LOOP;
	FOR r IN SELECT n.nspname AS obj, ` + grantee + ` AS who
		FROM pg_catalog.pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
		WHERE ` + nonSystem + persistent + ` AND a.privilege_type = 'CREATE' LOOP
		EXECUTE format('REVOKE CREATE ON SCHEMA %%I FROM %%s CASCADE', r.obj, r.who);
	END LOOP;
	FOR r IN SELECT ` + grantee + ` AS who
		FROM pg_catalog.pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
		WHERE d.datname = current_database() AND a.privilege_type IN ('CREATE', 'TEMPORARY') AND a.grantee <> d.datdba LOOP
		EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %%I FROM %%s CASCADE', current_database(), r.who);
	END LOOP;
	FOR r IN SELECT l.oid AS obj, ` + grantee + ` AS who
		FROM pg_catalog.pg_largeobject_metadata l, aclexplode(coalesce(l.lomacl, acldefault('L', l.lomowner))) a
		WHERE a.privilege_type = 'UPDATE' LOOP
		EXECUTE format('REVOKE UPDATE ON LARGE OBJECT %%s FROM %%s CASCADE', r.obj, r.who);
	END LOOP;
	FOR r IN SELECT p.oid::regprocedure AS obj FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE ` + nonSystem + persistent + ` AND p.prosecdef LOOP
		EXECUTE format('ALTER ROUTINE %%s SECURITY INVOKER', r.obj);
	END LOOP;
	EXECUTE format('GRANT CONNECT ON DATABASE %%I TO %%I', current_database(), o);
	FOR r IN SELECT n.nspname AS obj FROM pg_catalog.pg_namespace n WHERE ` + nonSystem + ` AND n.nspname NOT LIKE 'pg\_t%%' LOOP
		EXECUTE format('GRANT USAGE ON SCHEMA %%I TO %%I', r.obj, o);
	END LOOP;
	FOR r IN SELECT c.oid::regclass AS obj, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ` + nonSystem + ` AND n.nspname NOT LIKE 'pg\_temp\_%%' LOOP
		IF r.relkind IN ('r', 'p') THEN
			EXECUTE format('GRANT SELECT, DELETE, TRUNCATE ON TABLE %%s TO %%I', r.obj, o);
		ELSE
			EXECUTE format('GRANT SELECT ON %%s TO %%I', r.obj, o);
		END IF;
	END LOOP;
	FOR r IN SELECT l.oid AS obj FROM pg_catalog.pg_largeobject_metadata l LOOP
		EXECUTE format('GRANT SELECT ON LARGE OBJECT %%s TO %%I', r.obj, o);
	END LOOP;
END$$`

// loFunctionsSQL grants (%[1]s: GRANT … TO, or REVOKE … FROM) EXECUTE on
// the large-object creating functions to or from %[2]s (a literal list of
// identifiers).
const loFunctionsSQL = `DO $$DECLARE f regprocedure; BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace
		AND p.proname IN ('lo_creat', 'lo_create', 'lo_from_bytea') LOOP
		EXECUTE format('%[1]s EXECUTE ON FUNCTION %%s %[3]s %%s', f, %[2]s);
	END LOOP;
END$$`

// schemaCreateSQL grants CREATE on every schema the current role owns to
// %[1]s (a literal): REASSIGN OWNED moves tables before or after their
// schema, and a non-superuser may give a table only to a role that may
// create in its schema.
const schemaCreateSQL = `DO $$DECLARE r text; BEGIN
	FOR r IN SELECT n.nspname FROM pg_catalog.pg_namespace n
		WHERE n.nspowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) LOOP
		EXECUTE format('GRANT CREATE ON SCHEMA %%I TO %%I', r, %[1]s);
	END LOOP;
END$$`

// DropHelper is the function a frozen database's owner drops a table,
// view or materialized view with (DROP needs ownership, which it has lost
// while frozen): SELECT bitkit_frozen.drop_table('name').
const DropHelper = "bitkit_frozen.drop_table"

// dropHelperMarker is the comment of the schema bitd creates for
// DropHelper; thawing drops only a schema that carries it.
const dropHelperMarker = "created by bitd while the database is over its storage limit; dropped when it is back under"

// dropHelperSQL creates, as the frozen role, the schema bitkit_frozen and
// DropHelper in it for the owner login role (%[1]s, a literal), unless a
// schema of that name exists. The function runs as the frozen role and
// only drops (RESTRICT) a relation of the tenant's schemas.
const dropHelperSQL = `DO $$BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'bitkit_frozen') THEN
		RETURN;
	END IF;
	CREATE SCHEMA bitkit_frozen;
	COMMENT ON SCHEMA bitkit_frozen IS '` + dropHelperMarker + `';
	CREATE FUNCTION bitkit_frozen.drop_table(rel regclass) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
		SET search_path = pg_catalog, pg_temp AS $f$
	DECLARE k "char";
	BEGIN
		SELECT c.relkind INTO k FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = rel AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'bitkit_frozen') AND n.nspname NOT LIKE 'pg\_%%';
		IF k IS NULL THEN
			RAISE EXCEPTION 'bitkit_frozen.drop_table drops a table, view, materialized view or foreign table of this database, not %%', rel;
		END IF;
		EXECUTE format('DROP %%s %%s', CASE k WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
			WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, rel);
	END$f$;
	REVOKE ALL ON FUNCTION bitkit_frozen.drop_table(regclass) FROM PUBLIC;
	EXECUTE format('GRANT USAGE ON SCHEMA bitkit_frozen TO %%I', %[1]s);
	EXECUTE format('GRANT EXECUTE ON FUNCTION bitkit_frozen.drop_table(regclass) TO %%I', %[1]s);
END$$`

// dropDropHelperSQL drops the schema dropHelperSQL created.
const dropDropHelperSQL = `DO $$BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'bitkit_frozen'
		AND pg_catalog.obj_description(oid, 'pg_namespace') = '` + dropHelperMarker + `') THEN
		DROP SCHEMA bitkit_frozen CASCADE;
	END IF;
END$$`

func (s *Store) connectTo(ctx context.Context, pgName string) (*pgx.Conn, error) {
	cfg := s.adminCfg.ConnConfig.Copy()
	cfg.Database = pgName
	return pgx.ConnectConfig(ctx, cfg)
}

// endWriters ends the sessions of pgName's owner and writer roles that are
// running a statement or inside a transaction, and waits (5 s at most) for
// them to exit. Idle sessions are left alone, their next statement is
// checked against the privileges they have then, unless idle too: then
// every one is ended (the owner's temporary tables live in them, and
// their schemas are out of the freeze's reach). With readers, the
// readers' and public readers' sessions too (their locks can keep the
// freeze from taking its own).
// With before set, only statements that started before it are ended.
func (s *Store) endWriters(ctx context.Context, pgName string, readers, idle bool, before *time.Time) {
	roles := []string{pgName + OwnerSuffix, pgName + WriterSuffix}
	if readers {
		roles = append(roles, pgName+ReaderSuffix, pgName+PublicSuffix)
	}
	_, err := s.admin.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity
		WHERE datname = $1 AND usename = ANY ($2) AND pid <> pg_catalog.pg_backend_pid() AND ($3 OR state IS DISTINCT FROM 'idle')
		AND ($4::timestamptz IS NULL OR query_start < $4)`,
		pgName, roles, idle, before)
	if err != nil {
		s.log.Warn("cannot end the writing sessions of a database over its storage limit", "database", pgName, "err", err)
	}
}

// Freeze freezes database q (see the top of this file): it saves the
// privileges it takes in quota_freezes, reassigns and revokes in one
// transaction of the database, and ends the owner's and writer's
// sessions. Freezing a frozen database does nothing. When a lock held by a
// session keeps it waiting past its lock_timeout, it ends the readers'
// sessions too and tries once more.
func (s *Store) Freeze(ctx context.Context, q QuotaState) error {
	if sib, err := s.on(ctx, q.Placement); err != nil {
		return err
	} else if sib != s {
		return sib.Freeze(ctx, q)
	}
	err := s.freeze(ctx, q, false)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" {
		err = s.freeze(ctx, q, true)
	}
	return err
}

func (s *Store) freeze(ctx context.Context, q QuotaState, readers bool) error {
	pg := q.PGName
	owner, frozen := pg+OwnerSuffix, pg+FrozenSuffix
	if err := s.ensureFrozenRole(ctx, pg); err != nil {
		return err
	}
	conn, err := s.connectTo(ctx, pg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Already frozen (every pass finds a frozen database still over its
	// limit): end nothing. The DELETE or TRUNCATE that brings it back
	// under is running now, perhaps.
	var dba string
	var temp bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(d.datdba), EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
		WHERE c.relpersistence = 't' AND r.rolname = ANY ($1))
		FROM pg_catalog.pg_database d WHERE d.datname = current_database()`, []string{owner, pg + WriterSuffix}).Scan(&dba, &temp); err != nil {
		return err
	}
	if dba == frozen {
		return nil
	}
	s.endWriters(ctx, pg, readers, temp, nil)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = current_database()`).Scan(&dba); err != nil {
		return err
	}
	if dba == frozen {
		return nil
	}
	rows, err := tx.Query(ctx, savedPrivilegesSQL)
	if err != nil {
		return fmt.Errorf("list the privileges to take: %w", err)
	}
	saved, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the privileges to take: %w", err)
	}
	if _, err := s.DB.Exec(ctx, `INSERT INTO quota_freezes (database_id, usage_bytes, limit_bytes, saved) VALUES ($1, $2, $3, $4)
		ON CONFLICT (database_id) DO UPDATE SET frozen_at = now(), thawed_at = NULL, usage_bytes = EXCLUDED.usage_bytes,
			limit_bytes = EXCLUDED.limit_bytes, saved = EXCLUDED.saved`, q.DatabaseID, q.UsageBytes, q.LimitBytes, saved); err != nil {
		return fmt.Errorf("record the freeze: %w", err)
	}
	tenants := []string{owner, pg + WriterSuffix, pg + ReaderSuffix, pg + PublicSuffix}
	idents := make([]string, len(tenants))
	for i, r := range tenants {
		idents[i] = ident(r)
	}
	stmts := []string{
		"SET LOCAL lock_timeout = '10s'",
		"SET LOCAL ROLE " + ident(owner),
		fmt.Sprintf(schemaCreateSQL, quoteLiteral(frozen)),
		"RESET ROLE",
		fmt.Sprintf("REASSIGN OWNED BY %s TO %s", strings.Join(idents, ", "), ident(frozen)),
		fmt.Sprintf(loFunctionsSQL, "REVOKE", quoteLiteral(ident(owner)+", "+ident(pg+WriterSuffix)), "FROM"),
		"SET LOCAL ROLE " + ident(frozen),
		fmt.Sprintf(revokeGrowthSQL, quoteLiteral(owner)),
		fmt.Sprintf(dropHelperSQL, quoteLiteral(owner)),
	}
	for _, st := range stmts {
		if _, err := tx.Exec(ctx, st); err != nil {
			return fmt.Errorf("freeze: %.40s…: %w", st, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	// Statements that started before the commit were checked against the
	// privileges they had then; those that started after were checked
	// against what the freeze left (a DELETE that brings the database back
	// under must not be ended).
	var committed time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&committed); err != nil {
		return err
	}
	s.endWriters(ctx, pg, false, false, &committed)
	s.log.Warn("database frozen: over its storage limit", "database", pg, "usage_bytes", q.UsageBytes, "limit_bytes", q.LimitBytes)
	return nil
}

// ensureFrozenRole creates pgName's frozen role when it is missing and
// makes the admin a member (to reassign to it and act as it).
func (s *Store) ensureFrozenRole(ctx context.Context, pgName string) error {
	frozen := pgName + FrozenSuffix
	var exists bool
	if err := s.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)`, frozen).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		_, err := s.admin.Exec(ctx, "CREATE ROLE "+ident(frozen)+" NOLOGIN NOINHERIT")
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505")) {
			return fmt.Errorf("create the frozen role: %w", err)
		}
	}
	var member bool
	if err := s.admin.QueryRow(ctx, `SELECT pg_catalog.pg_has_role(current_user, $1, 'MEMBER')`, frozen).Scan(&member); err != nil {
		return err
	}
	if !member {
		if _, err := s.admin.Exec(ctx, "GRANT "+ident(frozen)+" TO CURRENT_USER"); err != nil {
			return fmt.Errorf("make the admin a member of the frozen role: %w", err)
		}
	}
	return nil
}

// Thaw gives a frozen database back to its owner role and replays the
// privileges saved when it was frozen. Thawing a database that is not
// frozen does nothing.
func (s *Store) Thaw(ctx context.Context, q QuotaState) error {
	if sib, err := s.on(ctx, q.Placement); err != nil {
		return err
	} else if sib != s {
		return sib.Thaw(ctx, q)
	}
	pg := q.PGName
	owner, frozen := pg+OwnerSuffix, pg+FrozenSuffix
	var saved []string
	err := s.DB.QueryRow(ctx, `SELECT saved FROM quota_freezes WHERE database_id = $1`, q.DatabaseID).Scan(&saved)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read the saved privileges: %w", err)
	}
	conn, err := s.connectTo(ctx, pg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var dba string
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = current_database()`).Scan(&dba); err != nil {
		return err
	}
	if dba == frozen {
		for _, st := range []string{
			"SET LOCAL lock_timeout = '10s'",
			"SET LOCAL ROLE " + ident(frozen),
			dropDropHelperSQL,
			fmt.Sprintf(schemaCreateSQL, quoteLiteral(owner)),
			"RESET ROLE",
			fmt.Sprintf("REASSIGN OWNED BY %s TO %s", ident(frozen), ident(owner)),
			fmt.Sprintf(loFunctionsSQL, "GRANT", quoteLiteral(ident(owner)+", "+ident(pg+WriterSuffix)), "TO"),
			"SET LOCAL ROLE " + ident(owner),
		} {
			if _, err := tx.Exec(ctx, st); err != nil {
				return fmt.Errorf("thaw: %.40s…: %w", st, err)
			}
		}
		for _, st := range saved {
			// An object gone meanwhile (a table dropped by cascade) is
			// skipped; anything else fails the thaw, retried next pass.
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, st); err != nil {
				_ = sp.Rollback(ctx)
				var pe *pgconn.PgError
				if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42704" || pe.Code == "42883" || pe.Code == "3F000") {
					continue
				}
				return fmt.Errorf("thaw: give back %q: %w", st, err)
			}
			if err := sp.Commit(ctx); err != nil {
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("thaw: %w", err)
		}
		s.log.Info("database thawed: back under its storage limit", "database", pg, "usage_bytes", q.UsageBytes, "limit_bytes", q.LimitBytes)
	}
	// The row stays, as the record of the thaw (ThawedWithin).
	if _, err := s.DB.Exec(ctx, `UPDATE quota_freezes SET thawed_at = now(), saved = '{}' WHERE database_id = $1`, q.DatabaseID); err != nil {
		return fmt.Errorf("thaw: record the thaw: %w", err)
	}
	return nil
}

// ThawedWithin reports whether database databaseID thawed in the last d.
func (s *Store) ThawedWithin(ctx context.Context, databaseID string, d time.Duration) (bool, error) {
	var yes bool
	err := s.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM quota_freezes
		WHERE database_id = $1 AND thawed_at > now() - $2::interval)`, databaseID, d).Scan(&yes)
	return yes, err
}

// VacuumFrozen runs VACUUM on the tables of a frozen database that hold
// dead rows, so that space freed by DELETE at the end of a table goes back
// to the file system (plain VACUUM truncates empty trailing pages). The
// tenant cannot: its roles own nothing while frozen.
func (s *Store) VacuumFrozen(ctx context.Context, pgName string) error {
	if s.root == nil {
		placement, err := s.PlacementOf(ctx, pgName)
		if err != nil {
			return err
		}
		if sib, err := s.on(ctx, placement); err != nil {
			return err
		} else if sib != s {
			return sib.VacuumFrozen(ctx, pgName)
		}
	}
	conn, err := s.connectTo(ctx, pgName)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT relid::regclass::text FROM pg_catalog.pg_stat_all_tables
		WHERE n_dead_tup > 0 AND schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "VACUUM "+t); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42P01" {
				continue
			}
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

// SetStorageLimit sets the storage_limit_bytes (0: no limit) of the live
// database account/name and returns its id; for operators (bitd admin db
// limit). ErrNotFound when there is no such database.
func (s *Store) SetStorageLimit(ctx context.Context, account, name string, limit int64) (string, error) {
	var id string
	err := s.DB.QueryRow(ctx, `UPDATE databases d SET storage_limit_bytes = $3 FROM accounts a
		WHERE a.id = d.account_id AND lower(a.name) = lower($1) AND lower(d.name) = lower($2) AND d.deleted_at IS NULL
		RETURNING d.id`, account, name, limit).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("set storage limit: %w", err)
	}
	return id, nil
}
