package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// temp_file_limit caps the temporary files (sorts and hashes that spill
// past work_mem, materialised CTEs, …) one session may hold at once; a
// query going over it fails with SQLSTATE 53400. It is a superuser-only
// parameter (PGC_SUSET): platform roles cannot SET it, nor ALTER DATABASE or
// ALTER ROLE it away, and bitd's admin can set it only when it is a
// superuser or has been granted SET ON PARAMETER temp_file_limit
// (PostgreSQL 15+). bitd sets it per platform database (ALTER DATABASE …
// SET), so the limit applies to every session of a tenant's roles, through
// the wire proxy and the HTTP API alike.

var canonicalTempFileLimit = regexp.MustCompile(`^(-1|[1-9][0-9]*(kB|MB|GB|TB))$`)

func validTempFileLimit(v string) bool { return canonicalTempFileLimit.MatchString(v) }

// initTempFileLimit finds out whether the admin may set temp_file_limit and,
// if so, applies s.tempLimit to every live platform database whose setting
// differs. Neither step fails Open: a cluster where the limit cannot be set
// is logged once and served without it.
func (s *Store) initTempFileLimit(ctx context.Context) {
	ok, role, err := s.canSetTempFileLimit(ctx)
	if err != nil {
		s.log.Warn("cannot tell whether bitd may set temp_file_limit: platform databases get none", "err", err)
		return
	}
	s.tempLimitOK = ok
	if !ok {
		if s.tempLimit != "-1" {
			s.log.Warn("temp_file_limit is not set on platform databases: bitd's admin role is not a superuser and may not set it, "+
				"so one huge sort or hash can fill the cluster's disk with temporary files. Fix: as a superuser, run "+
				"GRANT SET ON PARAMETER temp_file_limit TO "+ident(role)+" (PostgreSQL 15+), or give --database-url a superuser",
				"role", role, "temp_file_limit", s.tempLimit)
		}
		return
	}
	n, err := s.SyncTempFileLimit(ctx)
	if err != nil {
		s.log.Warn("temp_file_limit not applied to every platform database", "err", err, "applied", n)
	} else if n > 0 {
		s.log.Info("temp_file_limit applied to platform databases", "temp_file_limit", s.tempLimit, "databases", n)
	}
}

// canSetTempFileLimit reports whether the admin connection may set
// temp_file_limit (superuser, or SET ON PARAMETER granted), and its role.
func (s *Store) canSetTempFileLimit(ctx context.Context) (ok bool, role string, err error) {
	var super bool
	var version int
	if err := s.admin.QueryRow(ctx, `SELECT current_user, r.rolsuper, current_setting('server_version_num')::int
		FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).Scan(&role, &super, &version); err != nil {
		return false, "", err
	}
	if super || version < 150000 { // parameter privileges are new in PostgreSQL 15
		return super, role, nil
	}
	err = s.admin.QueryRow(ctx, `SELECT has_parameter_privilege(current_user, 'temp_file_limit', 'SET')`).Scan(&ok)
	return ok, role, err
}

// tempLimitStatement is the ALTER DATABASE that gives pgName the current
// limit ("-1": removes the setting).
func (s *Store) tempLimitStatement(pgName string) string {
	if s.tempLimit == "-1" {
		return fmt.Sprintf("ALTER DATABASE %s RESET temp_file_limit", ident(pgName))
	}
	return fmt.Sprintf("ALTER DATABASE %s SET temp_file_limit = %s", ident(pgName), quoteLiteral(s.tempLimit))
}

// SyncTempFileLimit sets the configured temp_file_limit on every live
// platform database whose database-level setting differs, and returns how
// many it changed. One query finds them (pg_db_role_setting is a shared
// catalog, readable from the metadata database); only those are altered.
// Sessions already open keep the value they started with.
func (s *Store) SyncTempFileLimit(ctx context.Context) (int, error) {
	if s.tempLimit == "" || !s.tempLimitOK {
		return 0, nil
	}
	var want any = s.tempLimit // NULL: no setting wanted
	if s.tempLimit == "-1" {
		want = nil
	}
	rows, err := s.DB.Query(ctx, `SELECT d.pg_name
		FROM databases d
		JOIN pg_catalog.pg_database pd ON pd.datname = d.pg_name
		LEFT JOIN pg_catalog.pg_db_role_setting rs ON rs.setdatabase = pd.oid AND rs.setrole = 0
		WHERE d.deleted_at IS NULL
		AND (SELECT substr(c, length('temp_file_limit=') + 1) FROM unnest(rs.setconfig) c
			WHERE c LIKE 'temp\_file\_limit=%' LIMIT 1) IS DISTINCT FROM $1::text
		ORDER BY d.pg_name`, want)
	if err != nil {
		return 0, fmt.Errorf("find platform databases to update: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find platform databases to update: %w", err)
	}
	n := 0
	var errs []error
	for _, name := range names {
		_, err := s.admin.Exec(ctx, s.tempLimitStatement(name))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3D000" { // dropped meanwhile
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		n++
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	return n, errors.Join(errs...)
}

// setTempFileLimit gives a database being provisioned the current limit.
// A failure is logged, never returned: a database without the limit beats
// no database.
func (s *Store) setTempFileLimit(ctx context.Context, pgName string) {
	if s.tempLimit == "" || s.tempLimit == "-1" || !s.tempLimitOK {
		return
	}
	if _, err := s.admin.Exec(ctx, s.tempLimitStatement(pgName)); err != nil {
		s.log.Warn("new database created without temp_file_limit", "database", pgName, "err", err)
	}
}
