package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// login logs user in and returns the answer (access and refresh token).
func login(t *testing.T, s *bitdtest.Server, user, password string) resp {
	t.Helper()
	r := call(t, "POST", s.Endpoint+"/auth/v1/login", "", map[string]any{"username": user, "password": password})
	want(t, r, 200, "")
	if !strings.HasPrefix(r.str("refresh_token"), "bkr_") || r.str("access_token") == "" {
		t.Fatalf("login answer lacks tokens: %s", r.Raw)
	}
	return r
}

func refreshCall(t *testing.T, s *bitdtest.Server, rt string) resp {
	t.Helper()
	return call(t, "POST", s.Endpoint+"/auth/v1/refresh", "", map[string]any{"refresh_token": rt})
}

// wantRefreshRefused checks a 401 invalid_refresh_token whose message says why.
func wantRefreshRefused(t *testing.T, r resp, why string) {
	t.Helper()
	want(t, r, 401, "invalid_refresh_token")
	if !strings.Contains(r.str("error"), why) {
		t.Fatalf("refusal %q does not say %q", r.str("error"), why)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestRefreshTokens checks the login session's refresh tokens against a
// real bitd: rotation, storage by hash only, reuse revoking the session,
// concurrent trades of one token, logout (by refresh token and by access
// token), password change, and 100 goroutines of one core client causing
// exactly one refresh on the server.
func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	E := s.Endpoint
	meta := metaConn(t, s)
	s.NewUser(t, "rita", "rita-pass-1")
	ctx := t.Context()
	t.Cleanup(func() { // after every subtest, while bitd still runs
		logs := s.Logs()
		if m := regexp.MustCompile(`(bkr|bkt)_[0-9A-Za-z]{43}`).FindString(logs); m != "" {
			t.Errorf("bitd logged a token: %s…", m[:8])
		}
		if !strings.Contains(logs, "used refresh token was presented again") {
			t.Error("bitd did not log the refresh token reuse")
		}
	})

	t.Run("rotation and reuse", func(t *testing.T) {
		l := login(t, s, "rita", "rita-pass-1")
		if l.Body["refresh_expires_in"].(float64) != 14*24*3600 {
			t.Fatalf("refresh_expires_in = %v, want 14 days (the default idle lifetime)", l.Body["refresh_expires_in"])
		}
		rt1, at1 := l.str("refresh_token"), l.str("access_token")
		// Stored as a hash only.
		var n, plain int
		if err := meta.QueryRow(ctx, `SELECT count(*) FILTER (WHERE hash = $1), count(*) FILTER (WHERE hash = $2) FROM refresh_tokens`,
			sha256hex(rt1), rt1).Scan(&n, &plain); err != nil || n != 1 || plain != 0 {
			t.Fatalf("stored refresh token rows by hash %d, by plaintext %d (%v); want 1, 0", n, plain, err)
		}
		r := refreshCall(t, s, rt1)
		want(t, r, 200, "")
		rt2, at2 := r.str("refresh_token"), r.str("access_token")
		if rt2 == rt1 || at2 == at1 || !strings.HasPrefix(rt2, "bkr_") {
			t.Fatalf("refresh did not rotate: %s", r.Raw)
		}
		want(t, call(t, "GET", E+"/iam/v2/account", at2, nil), 200, "")
		want(t, call(t, "GET", E+"/iam/v2/account", at1, nil), 200, "") // rotation alone leaves earlier access tokens alone
		r = refreshCall(t, s, rt2)
		want(t, r, 200, "")
		rt3, at3 := r.str("refresh_token"), r.str("access_token")

		// rt1 again: a reuse. The whole session goes: every refresh
		// token and every access token it issued.
		wantRefreshRefused(t, refreshCall(t, s, rt1), "already used")
		wantRefreshRefused(t, refreshCall(t, s, rt3), "revoked")
		for _, at := range []string{at1, at2, at3} {
			want(t, call(t, "GET", E+"/iam/v2/account", at, nil), 401, "unauthorized")
		}
		var why string
		if err := meta.QueryRow(ctx, `SELECT f.revoked_why FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id WHERE t.hash = $1`,
			sha256hex(rt1)).Scan(&why); err != nil || why != "reuse" {
			t.Fatalf("session revoked_why = %q, %v; want reuse", why, err)
		}
		// A fresh login is a new session, unaffected.
		l = login(t, s, "rita", "rita-pass-1")
		want(t, refreshCall(t, s, l.str("refresh_token")), 200, "")
	})

	t.Run("malformed", func(t *testing.T) {
		want(t, call(t, "POST", E+"/auth/v1/refresh", "", map[string]any{}), 400, "")
		want(t, call(t, "POST", E+"/auth/v1/refresh", "", map[string]any{"refresh_token": s.APIKey}), 400, "invalid_field")
		wantRefreshRefused(t, refreshCall(t, s, "bkr_"+strings.Repeat("x", 43)), "unknown")
		r := call(t, "GET", E+"/iam/v2/account", login(t, s, "rita", "rita-pass-1").str("refresh_token"), nil)
		want(t, r, 401, "unauthorized")
		if !strings.Contains(r.str("error"), "/auth/v1/refresh") {
			t.Fatalf("a refresh token as bearer: %s", r.Raw)
		}
	})

	t.Run("concurrent trades of one token", func(t *testing.T) {
		rt := login(t, s, "rita", "rita-pass-1").str("refresh_token")
		const n = 20
		var wg sync.WaitGroup
		out := make([]resp, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				out[i] = refreshCall(t, s, rt)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		var won string
		for _, r := range out {
			switch r.Status {
			case 200:
				ok++
				won = r.str("refresh_token")
			case 401:
				want(t, r, 401, "invalid_refresh_token")
			default:
				t.Fatalf("status %d: %s", r.Status, r.Raw)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent trades of one refresh token succeeded, want exactly 1", ok, n)
		}
		// The others were reuses: the session, with the winner's new token, is revoked.
		wantRefreshRefused(t, refreshCall(t, s, won), "revoked")
	})

	t.Run("logout", func(t *testing.T) {
		// By refresh token (what bit logout does).
		l := login(t, s, "rita", "rita-pass-1")
		want(t, call(t, "POST", E+"/auth/v1/revoke", "", map[string]any{"refresh_token": l.str("refresh_token")}), 200, "")
		wantRefreshRefused(t, refreshCall(t, s, l.str("refresh_token")), "revoked")
		want(t, call(t, "GET", E+"/iam/v2/account", l.str("access_token"), nil), 401, "unauthorized")
		want(t, call(t, "POST", E+"/auth/v1/revoke", "", map[string]any{"refresh_token": l.str("refresh_token")}), 200, "") // again: still fine
		wantRefreshRefused(t, call(t, "POST", E+"/auth/v1/revoke", "", map[string]any{"refresh_token": "bkr_nope"}), "unknown")

		// By access token: DELETE /auth/v1/token ends its session too.
		l = login(t, s, "rita", "rita-pass-1")
		r := refreshCall(t, s, l.str("refresh_token"))
		want(t, r, 200, "")
		want(t, call(t, "DELETE", E+"/auth/v1/token", r.str("access_token"), nil), 200, "")
		wantRefreshRefused(t, refreshCall(t, s, r.str("refresh_token")), "revoked")
		want(t, call(t, "GET", E+"/iam/v2/account", l.str("access_token"), nil), 401, "unauthorized")
	})

	t.Run("password change", func(t *testing.T) {
		s.NewUser(t, "pete", "pete-pass-1")
		l := login(t, s, "pete", "pete-pass-1")
		other := login(t, s, "rita", "rita-pass-1")
		s.Admin(t, "user", "passwd", "pete", "--password", "pete-pass-2")
		wantRefreshRefused(t, refreshCall(t, s, l.str("refresh_token")), "revoked")
		want(t, call(t, "GET", E+"/iam/v2/account", l.str("access_token"), nil), 401, "unauthorized")
		want(t, refreshCall(t, s, other.str("refresh_token")), 200, "") // another user's session stays
	})

	t.Run("100 goroutines, one refresh", func(t *testing.T) {
		s.NewUser(t, "cora", "cora-pass-1")
		clk := bitdtest.NewStepClock(time.Now())
		c, err := core.NewClient(E, core.WithClock(clk),
			core.WithCredentials(core.UsernamePassword("cora", "cora-pass-1", core.WithRefreshSkew(0))))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Account(ctx); err != nil {
			t.Fatal(err)
		}
		// The client now believes its access token expired (2h later: past
		// the 1h access lifetime, within the 14-day idle lifetime).
		clk.Add(2 * time.Hour)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		start := make(chan struct{})
		for range 100 {
			wg.Go(func() {
				<-start
				if _, err := c.Account(ctx); err != nil {
					errs <- err
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Counted on the server: one session (one login), two refresh
		// tokens (the login's and the one refresh's), one of them traded.
		var sessions, tokens, used int
		if err := meta.QueryRow(ctx, `SELECT count(DISTINCT f.id), count(t.id), count(t.used_at)
			FROM refresh_families f JOIN users u ON u.id = f.user_id JOIN refresh_tokens t ON t.family_id = f.id
			WHERE u.name = 'cora'`).Scan(&sessions, &tokens, &used); err != nil {
			t.Fatal(err)
		}
		if sessions != 1 || tokens != 2 || used != 1 {
			t.Fatalf("server saw %d sessions, %d refresh tokens, %d traded; want 1 login and exactly 1 refresh (1, 2, 1)", sessions, tokens, used)
		}
		// Logout revokes the session: its refresh token is dead.
		var live int
		if err := c.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		if err := meta.QueryRow(ctx, `SELECT count(*) FROM refresh_families f JOIN users u ON u.id = f.user_id
			WHERE u.name = 'cora' AND f.revoked_at IS NULL`).Scan(&live); err != nil || live != 0 {
			t.Fatalf("live sessions of cora after Logout: %d, %v", live, err)
		}
	})
}

// TestRefreshIdleExpiry checks --refresh-idle: a refresh token unused for
// longer is refused, and each refresh answers the idle lifetime anew.
func TestRefreshIdleExpiry(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--refresh-idle", "2s", "--refresh-lifetime", "1h"))
	s.NewUser(t, "ida", "ida-pass-1")
	l := login(t, s, "ida", "ida-pass-1")
	if l.Body["refresh_expires_in"].(float64) != 2 {
		t.Fatalf("refresh_expires_in = %v, want 2", l.Body["refresh_expires_in"])
	}
	r := refreshCall(t, s, l.str("refresh_token"))
	want(t, r, 200, "")
	rt := r.str("refresh_token")
	meta := metaConn(t, s)
	testwait.Eventually(t, 30*time.Second, func() error {
		// Read-only probe (trading the token would rotate it): is it past
		// its idle end by the database's clock, which bitd uses too?
		var live bool
		if err := meta.QueryRow(t.Context(), `SELECT expires_at > now() FROM refresh_tokens WHERE hash = $1`, sha256hex(rt)).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if live {
			return errors.New("the refresh token has not gone idle")
		}
		return nil
	})
	wantRefreshRefused(t, refreshCall(t, s, rt), "expired")
}

// TestRefreshAbsoluteExpiry checks --refresh-lifetime: a session refreshed
// often (never idle) still ends at its lifetime, and the refresh tokens
// issued near the end are capped by it.
func TestRefreshAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--refresh-idle", "1h", "--refresh-lifetime", "3s"))
	s.NewUser(t, "abe", "abe-pass-1")
	l := login(t, s, "abe", "abe-pass-1")
	if v := l.Body["refresh_expires_in"].(float64); v > 3 {
		t.Fatalf("refresh_expires_in = %v, want at most 3 (capped by the lifetime, not the 1h idle)", v)
	}
	rt := l.str("refresh_token")
	refreshed := 0
	testwait.Eventually(t, 30*time.Second, func() error {
		r := refreshCall(t, s, rt)
		if r.Status == 401 {
			wantRefreshRefused(t, r, "expired")
			return nil
		}
		want(t, r, 200, "")
		refreshed++
		rt = r.str("refresh_token")
		return errors.New("the session has not reached its lifetime")
	})
	if refreshed == 0 {
		t.Fatal("no refresh succeeded before the session ended")
	}
	// A new login starts a new session.
	want(t, refreshCall(t, s, login(t, s, "abe", "abe-pass-1").str("refresh_token")), 200, "")
}
