//go:build !js

package core_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// TestE2ERefreshSharedFileCache: several clients sharing one file token
// cache (as several CLI processes do), none knowing the password, all find
// the cached access token expired at once. The cache's lock lets one of
// them trade the refresh token and the others use its result: had two
// traded the same token, the server would have revoked the session and
// they would fail.
func TestE2ERefreshSharedFileCache(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	const password = "shared-cache-Pa55word"
	user := bitdtest.UniqueName("fc")
	s.NewUser(t, user, password)
	dir := t.TempDir()
	clk := bitdtest.NewStepClock(time.Now())
	first, err := core.NewClient(s.Endpoint, core.WithClock(clk), core.WithCredentials(
		core.UsernamePassword(user, password, core.WithTokenCache(core.NewFileTokenCache(dir)), core.WithRefreshSkew(0))))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Login(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour) // past the access token's hour, within the session's idle lifetime
	const n = 8
	clients := make([]*core.Client, n)
	for i := range clients {
		// Each its own cache value on the same directory: separate "processes".
		clients[i], err = core.NewClient(s.Endpoint, core.WithClock(clk), core.WithCredentials(
			core.UsernamePassword(user, "", core.WithTokenCache(core.NewFileTokenCache(dir)), core.WithRefreshSkew(0))))
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for _, c := range clients {
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
	// The session is still alive: one more refresh works.
	clk.Add(2 * time.Hour)
	if _, err := clients[0].Account(ctx); err != nil {
		t.Fatalf("after the concurrent refresh, the session is gone: %v", err)
	}
}

// TestE2ERefreshThenPassword: a client refreshes with its refresh token
// while the session lives, and logs in with its password once the session
// was revoked; Logout revokes the session on the server.
func TestE2ERefreshThenPassword(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	const password = "fallback-Pa55word"
	user := bitdtest.UniqueName("fb")
	s.NewUser(t, user, password)
	cache := core.NewMemoryTokenCache()
	clk := bitdtest.NewStepClock(time.Now())
	c, err := core.NewClient(s.Endpoint, core.WithClock(clk), core.WithCredentials(
		core.UsernamePassword(user, password, core.WithTokenCache(cache), core.WithRefreshSkew(0))))
	if err != nil {
		t.Fatal(err)
	}
	key := s.Endpoint + "\n" + user
	tok := func() core.CachedToken {
		t.Helper()
		ct, ok, err := cache.Get(ctx, key)
		if err != nil || !ok {
			t.Fatalf("no cached token: %v", err)
		}
		return ct
	}
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	t1 := tok()
	if t1.RefreshToken == "" || t1.RefreshExpiry.IsZero() {
		t.Fatalf("login cached no refresh token: %+v", t1.RefreshExpiry)
	}
	clk.Add(2 * time.Hour)
	if _, err := c.Account(ctx); err != nil {
		t.Fatal(err)
	}
	t2 := tok()
	if t2.RefreshToken == t1.RefreshToken {
		t.Fatal("the refresh token was not rotated")
	}
	if code := post(t, s.Endpoint+"/auth/v1/refresh", t1.RefreshToken); code != 401 {
		t.Fatalf("the traded refresh token trades again: %d", code)
	}
	// That reuse revoked the session: the next refresh is refused, and the
	// client falls back to its password.
	clk.Add(2 * time.Hour)
	if _, err := c.Account(ctx); err != nil {
		t.Fatalf("no fallback to the password: %v", err)
	}
	t3 := tok()
	if t3.RefreshToken == "" || t3.RefreshToken == t2.RefreshToken {
		t.Fatal("the fallback login cached no new session")
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if code := post(t, s.Endpoint+"/auth/v1/refresh", t3.RefreshToken); code != 401 {
		t.Fatalf("the refresh token trades after Logout: %d", code)
	}
	if _, ok, _ := cache.Get(ctx, key); ok {
		t.Fatal("Logout left the token in the cache")
	}
}

func post(t *testing.T, url, refreshToken string) int {
	t.Helper()
	b, _ := jsonx.Marshal(map[string]string{"refresh_token": refreshToken})
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
