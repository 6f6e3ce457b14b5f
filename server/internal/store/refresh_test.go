package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
)

// TestRefreshSessionConcurrent trades one refresh token from many
// goroutines at once, round after round: exactly one trade per round
// succeeds, and the others are reuses that revoke the session.
func TestRefreshSessionConcurrent(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, "racer", "")
	if err != nil {
		t.Fatal(err)
	}
	ttl := SessionTTL{Access: time.Hour, Idle: time.Hour, Absolute: 24 * time.Hour}
	const rounds, workers = 20, 16
	for round := range rounds {
		pair, err := s.CreateSession(ctx, u.ID, ttl)
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg          sync.WaitGroup
			mu          sync.Mutex
			won, reused int
			winner      *TokenPair
		)
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				res, err := s.RefreshSession(ctx, pair.RefreshToken, ttl)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
					winner = res.Pair
				case errors.Is(err, ErrRefreshReused), errors.Is(err, ErrRefreshRevoked):
					reused++
				default:
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if won != 1 || reused != workers-1 {
			t.Fatalf("round %d: %d trades succeeded and %d were refused as reuses; want 1 and %d", round, won, reused, workers-1)
		}
		// The reuses revoked the session, the winner's new token with it.
		if _, err := s.RefreshSession(ctx, winner.RefreshToken, ttl); !errors.Is(err, ErrRefreshRevoked) {
			t.Fatalf("round %d: the winner's token after a reuse: %v, want ErrRefreshRevoked", round, err)
		}
		if _, _, err := s.AccessTokenPrincipal(ctx, winner.AccessToken); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: the winner's access token after a reuse: %v, want revoked", round, err)
		}
	}
}

// TestRefreshSessionLifetimes checks the idle end (each refresh token's)
// and the absolute end (the session's, capping every token's).
func TestRefreshSessionLifetimes(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, "timer", "")
	if err != nil {
		t.Fatal(err)
	}
	ttl := SessionTTL{Access: time.Hour, Idle: time.Hour, Absolute: 10 * time.Hour}
	p, err := s.CreateSession(ctx, u.ID, ttl)
	if err != nil {
		t.Fatal(err)
	}
	// Idle: the token's own end passed.
	if _, err := s.DB.Exec(ctx, `UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE hash = $1`, hashOf(p.RefreshToken)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshSession(ctx, p.RefreshToken, ttl); !errors.Is(err, ErrRefreshExpired) {
		t.Fatalf("idle token: %v, want ErrRefreshExpired", err)
	}
	// Absolute: the session's end passed, its token's not.
	p, err = s.CreateSession(ctx, u.ID, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Exec(ctx, `UPDATE refresh_families SET expires_at = now() - interval '1 second' WHERE id = $1`, p.FamilyID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshSession(ctx, p.RefreshToken, ttl); !errors.Is(err, ErrRefreshExpired) {
		t.Fatalf("session past its lifetime: %v, want ErrRefreshExpired", err)
	}
	// A token issued near the session's end ends with it.
	p, err = s.CreateSession(ctx, u.ID, SessionTTL{Access: time.Hour, Idle: time.Hour, Absolute: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var tokEnd, famEnd time.Time
	if err := s.DB.QueryRow(ctx, `SELECT t.expires_at, f.expires_at FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1`,
		hashOf(p.RefreshToken)).Scan(&tokEnd, &famEnd); err != nil {
		t.Fatal(err)
	}
	if !tokEnd.Equal(famEnd) || !p.RefreshExpires.Equal(famEnd) {
		t.Fatalf("token ends %v (answered %v), session %v: want the token capped at the session's end", tokEnd, p.RefreshExpires, famEnd)
	}
	// A password change revokes the user's sessions.
	if err := s.SetPassword(ctx, u.ID, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshSession(ctx, p.RefreshToken, ttl); !errors.Is(err, ErrRefreshRevoked) {
		t.Fatalf("after a password change: %v, want ErrRefreshRevoked", err)
	}
	// Sessions that ended over a day ago go at the next login; recent ones stay.
	if _, err := s.DB.Exec(ctx, `UPDATE refresh_families SET revoked_at = now() - interval '2 days' WHERE id = $1`, p.FamilyID); err != nil {
		t.Fatal(err)
	}
	var before int
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM refresh_families WHERE user_id = $1`, u.ID).Scan(&before); err != nil || before != 3 {
		t.Fatalf("sessions before: %d, %v; want 3", before, err)
	}
	if _, err := s.CreateSession(ctx, u.ID, ttl); err != nil {
		t.Fatal(err)
	}
	var gone, after int
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE id = $2), count(*) FROM refresh_families WHERE user_id = $1`, u.ID, p.FamilyID).Scan(&gone, &after); err != nil {
		t.Fatal(err)
	}
	if gone != 0 || after != 3 {
		t.Fatalf("after a login: the old session present %d times, %d sessions; want 0 and 3 (two recent, one new)", gone, after)
	}
}

func hashOf(s string) string { return secret.HashCredential(s) }
