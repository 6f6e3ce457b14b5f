package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/jackc/pgx/v5"
)

// ReservationPeriod is how long a deleted database's name stays reserved by
// default (Options.NameReservation), as on bit.io.
const ReservationPeriod = 30 * 24 * time.Hour

// Database is a platform database's metadata.
type Database struct {
	ID                string
	AccountID         string
	AccountName       string
	Name              string // the database part, case preserved
	PGName            string // the real PostgreSQL database
	IsPrivate         bool
	StorageLimitBytes int64
	Placement         string
	CreatedAt         time.Time
	// Role is the caller's permission ("" when the caller has none, which
	// for a public database means READER).
	Role string
	// Public: the caller's only access is that the database is public
	// (Role is then READER); it logs in as the public readers' role.
	Public bool
}

// PGRole is the login role the caller gets on the database (LoginRole).
func (d *Database) PGRole() string { return LoginRole(d.PGName, d.Role, d.Public) }

// FullName is "account/db".
func (d *Database) FullName() string { return d.AccountName + "/" + d.Name }

const dbColumns = `d.id, d.account_id, a.name, d.name, d.pg_name, d.is_private, d.storage_limit_bytes, d.placement, d.created_at`

func scanDB(r pgx.Row, extra ...any) (*Database, error) {
	var d Database
	dest := append([]any{&d.ID, &d.AccountID, &d.AccountName, &d.Name, &d.PGName, &d.IsPrivate, &d.StorageLimitBytes, &d.Placement, &d.CreatedAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	return &d, nil
}

var roleRank = map[string]int{"": 0, "READER": 1, "WRITER": 2, "ADMIN": 3, "OWNER": 4}

// BestRole returns the stronger of two roles.
func BestRole(a, b string) string {
	if roleRank[b] > roleRank[a] {
		return b
	}
	return a
}

// roleSQL computes the caller's role on d: for users, the best of their
// account membership and collaborator role; for service accounts, their role
// on listed databases only.
const roleSQL = `CASE WHEN $1 <> '' THEN
		coalesce((SELECT m.role FROM account_members m WHERE m.account_id = d.account_id AND m.user_id = $1), '') || ',' ||
		coalesce((SELECT c.role FROM collaborators c WHERE c.database_id = d.id AND c.user_id = $1), '')
	ELSE coalesce((SELECT sa.role FROM service_account_databases sd JOIN service_accounts sa ON sa.id = sd.service_account_id
		WHERE sd.database_id = d.id AND sa.id = $2), '') END`

func principalIDs(p *authn.Principal) (string, string) {
	if p == nil {
		return "", ""
	}
	if p.Kind == authn.KindServiceAccount {
		return "", p.ServiceAccountID
	}
	return p.UserID, ""
}

func bestOf(roles string) string {
	best := ""
	for _, r := range strings.Split(roles, ",") {
		best = BestRole(best, r)
	}
	return best
}

// DatabaseFor finds the live database account/name and the caller's role on
// it. It returns ErrNotFound when it does not exist, or when it is private
// and the caller has no role on it.
func (s *Store) DatabaseFor(ctx context.Context, p *authn.Principal, account, name string) (*Database, error) {
	uid, said := principalIDs(p)
	var roles string
	d, err := scanDB(s.DB.QueryRow(ctx, `SELECT `+dbColumns+`, `+roleSQL+`
		FROM databases d JOIN accounts a ON a.id = d.account_id
		WHERE lower(a.name) = lower($3) AND lower(d.name) = lower($4) AND d.deleted_at IS NULL`, uid, said, account, name), &roles)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up database: %w", err)
	}
	d.Role = bestOf(roles)
	if d.Role == "" {
		if d.IsPrivate || p == nil || p.Kind == authn.KindServiceAccount {
			return nil, ErrNotFound
		}
		d.Role, d.Public = "READER", true
	}
	return d, nil
}

// ListDatabases lists the live databases the caller has a role on (account
// membership, collaborator, or service-account grant), oldest first.
func (s *Store) ListDatabases(ctx context.Context, p *authn.Principal) ([]*Database, error) {
	uid, said := principalIDs(p)
	rows, err := s.DB.Query(ctx, `SELECT * FROM (SELECT `+dbColumns+`, `+roleSQL+` AS roles
		FROM databases d JOIN accounts a ON a.id = d.account_id WHERE d.deleted_at IS NULL) x
		WHERE roles NOT IN ('', ',') ORDER BY created_at, id`, uid, said)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	var out []*Database
	for rows.Next() {
		var roles string
		d, err := scanDB(rows, &roles)
		if err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		d.Role = bestOf(roles)
		out = append(out, d)
	}
	return out, rows.Err()
}

// DatabaseIDsInAccount returns the ids of the live databases of accountID
// with the given names ("account/db" or "db"), in order; a missing one is an
// error wrapping ErrNotFound that names it.
func (s *Store) DatabaseIDsInAccount(ctx context.Context, accountID string, names []string) ([]string, error) {
	var ids []string
	for _, n := range names {
		_, db, ok := strings.Cut(n, "/")
		if !ok {
			db = n
		}
		var id string
		err := s.DB.QueryRow(ctx, `SELECT id FROM databases WHERE account_id = $1 AND lower(name) = lower($2) AND deleted_at IS NULL`, accountID, db).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%w: database %q", ErrNotFound, n)
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// checkReservation returns a *ReservedError when name is reserved in accountID.
func (s *Store) checkReservation(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, accountID, name string) error {
	var until time.Time
	err := q.QueryRow(ctx, `SELECT reserved_until FROM name_reservations WHERE account_id = $1 AND name_lower = lower($2) AND reserved_until > now()`,
		accountID, name).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check name reservation: %w", err)
	}
	return &ReservedError{Until: until}
}

// CheckNameFree returns ErrConflict when a live database has the name,
// *ReservedError when it is reserved, nil when it is free.
func (s *Store) CheckNameFree(ctx context.Context, accountID, name, exceptID string) error {
	var exists bool
	if err := s.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM databases WHERE account_id = $1 AND lower(name) = lower($2) AND deleted_at IS NULL AND id <> $3)`,
		accountID, name, exceptID).Scan(&exists); err != nil {
		return fmt.Errorf("check name: %w", err)
	}
	if exists {
		return ErrConflict
	}
	return s.checkReservation(ctx, s.DB, accountID, name)
}

// UpdateDatabase changes name, is_private and storage_limit_bytes (nil =
// unchanged). A new name is checked against live names and reservations.
func (s *Store) UpdateDatabase(ctx context.Context, id string, name *string, isPrivate *bool, limit *int64) error {
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		if name != nil {
			var accountID, old string
			if err := tx.QueryRow(ctx, `SELECT account_id, name FROM databases WHERE id = $1 FOR UPDATE`, id).Scan(&accountID, &old); err != nil {
				return nil, err
			}
			if !strings.EqualFold(old, *name) {
				if err := s.checkReservation(ctx, tx, accountID, *name); err != nil {
					return nil, err
				}
			}
		}
		_, err := tx.Exec(ctx, `UPDATE databases SET name = coalesce($2, name), is_private = coalesce($3, is_private),
			storage_limit_bytes = coalesce($4, storage_limit_bytes) WHERE id = $1 AND deleted_at IS NULL`, id, name, isPrivate, limit)
		return []string{DBTag(id)}, err
	})
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var re *ReservedError
	if err != nil && !errors.As(err, &re) {
		return fmt.Errorf("update database: %w", err)
	}
	return err
}

// AddRowsQueried adds rows to the database's usage in the current month.
func (s *Store) AddRowsQueried(ctx context.Context, databaseID string, rows int64) error {
	_, err := s.DB.Exec(ctx, `INSERT INTO usage (database_id, period_start, rows_queried)
		VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2)
		ON CONFLICT (database_id, period_start) DO UPDATE SET rows_queried = usage.rows_queried + EXCLUDED.rows_queried`, databaseID, rows)
	if err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	return nil
}

// Usage is rows queried in one monthly period [Start, End).
type Usage struct {
	RowsQueried int64
	Start, End  time.Time
}

// UsageFor returns the current and previous month's usage of a database.
func (s *Store) UsageFor(ctx context.Context, databaseID string, now time.Time) (cur, prev Usage, err error) {
	now = now.UTC()
	cur.Start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	cur.End = cur.Start.AddDate(0, 1, 0)
	prev.Start, prev.End = cur.Start.AddDate(0, -1, 0), cur.Start
	rows, err := s.DB.Query(ctx, `SELECT period_start, rows_queried FROM usage WHERE database_id = $1 AND period_start IN ($2::date, $3::date)`,
		databaseID, cur.Start, prev.Start)
	if err != nil {
		return cur, prev, fmt.Errorf("read usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var start time.Time
		var n int64
		if err := rows.Scan(&start, &n); err != nil {
			return cur, prev, err
		}
		if start.Equal(cur.Start) {
			cur.RowsQueried = n
		} else {
			prev.RowsQueried = n
		}
	}
	return cur, prev, rows.Err()
}

// AddCollaborator gives userID role on databaseID (or changes it).
func (s *Store) AddCollaborator(ctx context.Context, databaseID, userID, role string) error {
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		_, err := tx.Exec(ctx, `INSERT INTO collaborators (database_id, user_id, role) VALUES ($1, $2, $3)
		ON CONFLICT (database_id, user_id) DO UPDATE SET role = EXCLUDED.role`, databaseID, userID, role)
		return []string{DBTag(databaseID)}, err
	})
	if err != nil {
		return fmt.Errorf("add collaborator: %w", err)
	}
	return nil
}
