package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
)

// RefreshTokenPrefix starts every refresh token ("bkr_" + 43 base62
// characters), so that one is told apart from access tokens and API keys.
const RefreshTokenPrefix = "bkr_"

// Refresh errors. Each is final for the token presented: the client must
// log in again with its password.
var (
	// ErrRefreshUnknown: no such refresh token (never issued, or its
	// session and user are gone).
	ErrRefreshUnknown = errors.New("unknown refresh token")
	// ErrRefreshExpired: the token was idle for longer than the idle
	// lifetime, or its session is older than the absolute lifetime.
	ErrRefreshExpired = errors.New("refresh token expired")
	// ErrRefreshRevoked: its session was revoked (logout, password change,
	// or an earlier reuse).
	ErrRefreshRevoked = errors.New("refresh token revoked")
	// ErrRefreshReused: the token had already been traded; its whole
	// session has just been revoked.
	ErrRefreshReused = errors.New("refresh token reused")
)

// SessionTTL are the lifetimes of a login session's tokens.
type SessionTTL struct {
	// Access is the lifetime of each access token.
	Access time.Duration
	// Idle is the lifetime of each refresh token: a session not refreshed
	// for this long ends.
	Idle time.Duration
	// Absolute is the lifetime of the session from its login, however
	// often it is refreshed.
	Absolute time.Duration
}

// TokenPair is what a login or a refresh issues.
type TokenPair struct {
	AccessToken    string
	AccessExpires  time.Time
	RefreshToken   string
	RefreshExpires time.Time // the idle end, capped by the session's end
	FamilyID       string    // the session
	AccessTokenID  string
}

// RefreshResult is the outcome of RefreshSession: the new pair, or the ids
// of the access tokens revoked because the token was reused.
type RefreshResult struct {
	Pair            *TokenPair
	RevokedAccessID []string
}

func interval(d time.Duration) string { return fmt.Sprintf("%d milliseconds", d.Milliseconds()) }

// newRefreshToken returns a fresh opaque refresh token.
func newRefreshToken() string { return RefreshTokenPrefix + secret.RandomBase62(43) }

// issue inserts a new refresh token of family and an access token tied to
// it, in tx.
func issue(ctx context.Context, tx pgx.Tx, userID, familyID string, ttl SessionTTL) (*TokenPair, error) {
	p := &TokenPair{FamilyID: familyID, RefreshToken: newRefreshToken(), AccessToken: secret.NewAccessToken()}
	if err := tx.QueryRow(ctx, `INSERT INTO refresh_tokens (hash, family_id, expires_at)
		SELECT $1, f.id, least(now() + $3::interval, f.expires_at) FROM refresh_families f WHERE f.id = $2
		RETURNING expires_at`,
		secret.HashCredential(p.RefreshToken), familyID, interval(ttl.Idle)).Scan(&p.RefreshExpires); err != nil {
		return nil, fmt.Errorf("issue refresh token: %w", err)
	}
	if err := tx.QueryRow(ctx, `INSERT INTO access_tokens (hash, user_id, expires_at, family_id)
		VALUES ($1, $2, now() + $3::interval, $4) RETURNING id, expires_at`,
		secret.HashCredential(p.AccessToken), userID, interval(ttl.Access), familyID).Scan(&p.AccessTokenID, &p.AccessExpires); err != nil {
		return nil, fmt.Errorf("issue access token: %w", err)
	}
	return p, nil
}

// CreateSession starts a login session for a user: a new refresh family,
// its first refresh token and an access token. It also deletes the user's
// sessions that ended (revoked, or past their absolute lifetime) more than
// a day ago and have no live access token left, with their tokens.
func (s *Store) CreateSession(ctx context.Context, userID string, ttl SessionTTL) (*TokenPair, error) {
	var pair *TokenPair
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM refresh_families f WHERE f.user_id = $1
			AND (f.revoked_at < now() - interval '1 day' OR f.expires_at < now() - interval '1 day')
			AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = f.id AND a.revoked_at IS NULL AND a.expires_at > now())`, userID); err != nil {
			return fmt.Errorf("delete ended sessions: %w", err)
		}
		var fid string
		if err := tx.QueryRow(ctx, `INSERT INTO refresh_families (user_id, expires_at) VALUES ($1, now() + $2::interval) RETURNING id`,
			userID, interval(ttl.Absolute)).Scan(&fid); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		var err error
		pair, err = issue(ctx, tx, userID, fid, ttl)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pair, nil
}

// RefreshSession trades a refresh token for a new pair, rotating it: the
// presented token is marked used and can never be traded again. The
// session's row is locked for the trade, so concurrent trades of one token
// are serialised and only the first succeeds; a later one finds the token
// used, which revokes the whole session (and its access tokens, whose ids
// are returned so that open sessions using them can be ended) and answers
// ErrRefreshReused. Other failures are ErrRefreshUnknown,
// ErrRefreshExpired and ErrRefreshRevoked.
func (s *Store) RefreshSession(ctx context.Context, refreshToken string, ttl SessionTTL) (RefreshResult, error) {
	var (
		res     RefreshResult
		outcome error
	)
	hash := secret.HashCredential(refreshToken)
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		var (
			fid, uid  string
			fExp      time.Time
			fRevoked  *time.Time
			tid       string
			tExp, now time.Time
			tUsed     *time.Time
		)
		// Lock the session first; then read the token in a new statement,
		// which sees what a trade committed while this one waited.
		err := tx.QueryRow(ctx, `SELECT f.id, f.user_id, f.expires_at, f.revoked_at FROM refresh_families f
			WHERE f.id = (SELECT family_id FROM refresh_tokens WHERE hash = $1) FOR UPDATE`, hash).
			Scan(&fid, &uid, &fExp, &fRevoked)
		if errors.Is(err, pgx.ErrNoRows) {
			outcome = ErrRefreshUnknown
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if err := tx.QueryRow(ctx, `SELECT id, expires_at, used_at, now() FROM refresh_tokens WHERE hash = $1`, hash).
			Scan(&tid, &tExp, &tUsed, &now); err != nil {
			return nil, err
		}
		reuse := func() ([]string, error) {
			outcome = ErrRefreshReused
			ids, err := revokeFamily(ctx, tx, fid, "reuse")
			res.RevokedAccessID = ids
			return credTags(ids), err
		}
		switch {
		case fRevoked != nil:
			outcome = ErrRefreshRevoked
			return nil, nil
		case tUsed != nil:
			return reuse()
		case !now.Before(tExp) || !now.Before(fExp):
			outcome = ErrRefreshExpired
			return nil, nil
		}
		// Only an unused token is marked (the lock above already makes this
		// so; the condition keeps it so on its own).
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = now() WHERE id = $1 AND used_at IS NULL`, tid)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() != 1 {
			return reuse()
		}
		res.Pair, err = issue(ctx, tx, uid, fid, ttl)
		return nil, err
	})
	if err != nil {
		return RefreshResult{}, fmt.Errorf("refresh session: %w", err)
	}
	return res, outcome
}

// revokeFamily revokes session fid (why: logout, reuse, password) and its
// live access tokens, returning their ids. An already revoked session is
// left as it is (its reason stays).
func revokeFamily(ctx context.Context, tx pgx.Tx, fid, why string) ([]string, error) {
	if _, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked_at = now(), revoked_why = $2 WHERE id = $1 AND revoked_at IS NULL`, fid, why); err != nil {
		return nil, fmt.Errorf("revoke session: %w", err)
	}
	rows, err := tx.Query(ctx, `UPDATE access_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL RETURNING id`, fid)
	if err != nil {
		return nil, fmt.Errorf("revoke session access tokens: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func credTags(ids []string) []string {
	tags := make([]string, len(ids))
	for i, id := range ids {
		tags[i] = CredTag(id)
	}
	return tags
}

// RevokeSessionByRefreshToken revokes the session of a refresh token (any
// token of it, used or not) and its access tokens, and returns their ids.
// An unknown token is ErrRefreshUnknown; revoking a revoked session again
// is not an error.
func (s *Store) RevokeSessionByRefreshToken(ctx context.Context, refreshToken string) ([]string, error) {
	var ids []string
	known := true
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		var fid string
		err := tx.QueryRow(ctx, `SELECT family_id FROM refresh_tokens WHERE hash = $1`, secret.HashCredential(refreshToken)).Scan(&fid)
		if errors.Is(err, pgx.ErrNoRows) {
			known = false
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		ids, err = revokeFamily(ctx, tx, fid, "logout")
		return credTags(ids), err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke session: %w", err)
	}
	if !known {
		return nil, ErrRefreshUnknown
	}
	return ids, nil
}

// RevokeSessionOfAccessToken revokes the session an access token was
// issued for, when it was issued for one, with every access token of it,
// and returns the ids of the access tokens revoked.
func (s *Store) RevokeSessionOfAccessToken(ctx context.Context, accessTokenID string) ([]string, error) {
	var ids []string
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		var fid *string
		err := tx.QueryRow(ctx, `SELECT family_id FROM access_tokens WHERE id = $1`, accessTokenID).Scan(&fid)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && fid == nil) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		ids, err = revokeFamily(ctx, tx, *fid, "logout")
		return credTags(ids), err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke session: %w", err)
	}
	return ids, nil
}

// revokeUserSessions revokes every live session of a user, in tx, and
// returns the ids of the access tokens revoked with them.
func revokeUserSessions(ctx context.Context, tx pgx.Tx, userID, why string) ([]string, error) {
	rows, err := tx.Query(ctx, `UPDATE refresh_families SET revoked_at = now(), revoked_why = $2
		WHERE user_id = $1 AND revoked_at IS NULL RETURNING id`, userID, why)
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	fids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(fids) == 0 {
		return nil, err
	}
	rows, err = tx.Query(ctx, `UPDATE access_tokens SET revoked_at = now() WHERE family_id = ANY ($1) AND revoked_at IS NULL RETURNING id`, fids)
	if err != nil {
		return nil, fmt.Errorf("revoke session access tokens: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
