package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Collaborator is a user given a role on one database outside its account.
type Collaborator struct {
	UserID   string
	UserName string
	Role     string // ADMIN, WRITER or READER
}

// ListCollaborators returns the collaborators of databaseID, by user name.
func (s *Store) ListCollaborators(ctx context.Context, databaseID string) ([]Collaborator, error) {
	rows, err := s.DB.Query(ctx, `SELECT u.id, u.name, c.role FROM collaborators c JOIN users u ON u.id = c.user_id
		WHERE c.database_id = $1 ORDER BY lower(u.name)`, databaseID)
	if err != nil {
		return nil, fmt.Errorf("list collaborators: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Collaborator, error) {
		var c Collaborator
		err := r.Scan(&c.UserID, &c.UserName, &c.Role)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list collaborators: %w", err)
	}
	return out, nil
}

// RemoveCollaborator takes userID's collaborator role on databaseID away
// and announces it (cached answers dropped, wire sessions re-checked).
// ErrNotFound when the user is not a collaborator there.
func (s *Store) RemoveCollaborator(ctx context.Context, databaseID, userID string) error {
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM collaborators WHERE database_id = $1 AND user_id = $2`, databaseID, userID)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, ErrNotFound
		}
		return []string{DBTag(databaseID), UserTag(userID)}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("remove collaborator: %w", err)
	}
	return nil
}

// IsAccountOwner reports whether userID is an OWNER of accountID.
func (s *Store) IsAccountOwner(ctx context.Context, accountID, userID string) (bool, error) {
	var ok bool
	err := s.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM account_members WHERE account_id = $1 AND user_id = $2 AND role = 'OWNER')`,
		accountID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check account owner: %w", err)
	}
	return ok, nil
}
