package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TooManyDatabasesError refuses a new database of an account that has
// Options.MaxDatabasesPerAccount live databases already.
type TooManyDatabasesError struct{ Limit int }

func (e *TooManyDatabasesError) Error() string {
	return fmt.Sprintf("this account already has %d databases, the most this server allows per account: delete a database you no longer need, or ask the operator to raise --max-databases-per-account", e.Limit)
}

// checkDatabaseCap refuses one more live database in accountID when the
// account is at the cap. With lock (inside CreateDatabase's transaction)
// it first locks the account's row, so concurrent creations are counted
// one after the other and cannot together pass the cap.
func (s *Store) checkDatabaseCap(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}, accountID string, lock bool) error {
	if s.maxDBs <= 0 {
		return nil
	}
	if lock {
		if _, err := q.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE`, accountID); err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
	}
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM databases WHERE account_id = $1 AND deleted_at IS NULL`, accountID).Scan(&n); err != nil {
		return fmt.Errorf("count databases: %w", err)
	}
	if n >= s.maxDBs {
		return &TooManyDatabasesError{Limit: s.maxDBs}
	}
	return nil
}

// AccountOfPGDatabase returns the id of the account that owns the platform
// database whose PostgreSQL name is pgName (deleted ones included: a
// database never changes account), or ErrNotFound.
func (s *Store) AccountOfPGDatabase(ctx context.Context, pgName string) (string, error) {
	var id string
	err := s.DB.QueryRow(ctx, `SELECT account_id FROM databases WHERE pg_name = $1`, pgName).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}
