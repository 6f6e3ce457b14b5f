package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// APIKeyInfo describes an API key without its secret: the plaintext exists
// only in the answer that created it.
type APIKeyInfo struct {
	ID        string
	CreatedAt time.Time
	// LastUsedAt is nil when the key was never used; it is recorded at most
	// once a minute.
	LastUsedAt *time.Time
}

// ListUserAPIKeys returns the live (not revoked) API keys of a user, oldest
// first.
func (s *Store) ListUserAPIKeys(ctx context.Context, userID string) ([]APIKeyInfo, error) {
	rows, err := s.DB.Query(ctx, `SELECT id, created_at, last_used_at FROM api_keys
		WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKeyInfo, error) {
		var k APIKeyInfo
		err := r.Scan(&k.ID, &k.CreatedAt, &k.LastUsedAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeUserAPIKeyByID revokes the live key with this id when it belongs to
// userID; otherwise it returns ErrNotFound.
func (s *Store) RevokeUserAPIKeyByID(ctx context.Context, userID, id string) error {
	var got string
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) { // notify.go: every replica drops the key
		err := tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = now()
		WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id`, id, userID).Scan(&got)
		return []string{CredTag(got)}, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	return nil
}
