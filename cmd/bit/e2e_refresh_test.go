package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// cachedSession is the token file of a `bit login` session.
type cachedSession struct {
	path         string
	raw          []byte
	AccessToken  string    `json:"access_token"`
	Expiry       time.Time `json:"expiry"`
	RefreshToken string    `json:"refresh_token"`
}

// readTokenFile returns the only token file under dir/tokens, checking it is
// mode 0600 in a 0700 directory.
func readTokenFile(t *testing.T, dir string) cachedSession {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.json"))
	if len(files) != 1 {
		t.Fatalf("token files %v, want one", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(filepath.Dir(files[0])); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("token directory: %v, %v; want mode 0700", di.Mode(), err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	cs := cachedSession{path: files[0], raw: b}
	if err := jsonx.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestLoginRefresh: `bit login` keeps a refresh token (never the password)
// in a 0600 cache file; a command run after the access token expired, with
// no password anywhere, refreshes the session and works; `bit logout`
// revokes the session, so its refresh token no longer trades.
func TestLoginRefresh(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--token-ttl", "2s"))
	b := newBitCLI(t, s)
	name := bitdtest.UniqueName("rf")
	password := "pw-" + bitdtest.UniqueName("")
	s.NewUser(t, name, password)
	b.withEnv("BITKIT_PASSWORD="+password).ok(t, "login", "-u", name)

	first := readTokenFile(t, b.cacheDir())
	if !strings.HasPrefix(first.RefreshToken, "bkr_") || first.AccessToken == "" {
		t.Fatalf("the token file holds no refresh token: %s", first.raw)
	}
	filepath.WalkDir(b.cacheDir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(password)) {
				t.Errorf("%s holds the password", p)
			}
		}
		return nil
	})

	// Wait until the cached access token has expired (by its own expiry):
	// the pause is the point.
	time.Sleep(time.Until(first.Expiry.Add(100 * time.Millisecond)))
	if r := call(t, s, "GET", "/iam/v2/account", first.AccessToken, nil); r.code != 401 {
		t.Fatalf("the first access token still works after its expiry: %d", r.code)
	}
	// No BITKIT_PASSWORD, no stdin: the refresh token carries the session.
	acct := decode(t, b.ok(t, "account"))
	if acct["name"] != name {
		t.Fatalf("account after the access token expired: %v", acct)
	}
	second := readTokenFile(t, b.cacheDir())
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("the session was not refreshed: the cached tokens did not change")
	}
	// The traded refresh token is used up.
	if r := call(t, s, "POST", "/auth/v1/refresh", "", map[string]string{"refresh_token": first.RefreshToken}); r.code != 401 {
		t.Fatalf("a traded refresh token traded again: %d %s", r.code, r.body)
	}
	// That reuse ended the session; log in again for the logout check.
	b.withEnv("BITKIT_PASSWORD="+password).ok(t, "login", "-u", name)
	previous := readTokenFile(t, b.cacheDir())
	// A wrong password is refused even with a session cached, which stays.
	if r := b.withEnv("BITKIT_PASSWORD=wrong-"+password).run(t, "", "login", "-u", name); r.code == 0 {
		t.Fatal("bit login with a wrong password succeeded while a session was cached")
	}
	if got := readTokenFile(t, b.cacheDir()); got.RefreshToken != previous.RefreshToken {
		t.Fatal("a failed login replaced the cached session")
	}
	// A new login replaces the session and revokes the previous one.
	b.withEnv("BITKIT_PASSWORD="+password).ok(t, "login", "-u", name)
	third := readTokenFile(t, b.cacheDir())
	if third.RefreshToken == previous.RefreshToken {
		t.Fatal("bit login kept the previous session instead of starting a new one")
	}
	if r := call(t, s, "POST", "/auth/v1/refresh", "", map[string]string{"refresh_token": previous.RefreshToken}); r.code != 401 || !strings.Contains(r.body, "revoked") {
		t.Fatalf("the replaced session's refresh token: %d %s, want 401 revoked", r.code, r.body)
	}
	lo := decode(t, b.ok(t, "logout"))
	if lo["logged_out"] != true {
		t.Fatalf("logout: %v", lo)
	}
	if _, err := os.Stat(third.path); !os.IsNotExist(err) {
		t.Fatalf("the token file is still there after logout: %v", err)
	}
	r := call(t, s, "POST", "/auth/v1/refresh", "", map[string]string{"refresh_token": third.RefreshToken})
	if r.code != 401 || !strings.Contains(r.body, "revoked") {
		t.Fatalf("refresh token after logout: %d %s, want 401 revoked", r.code, r.body)
	}
	if r := call(t, s, "GET", "/iam/v2/account", third.AccessToken, nil); r.code != 401 {
		t.Fatalf("access token after logout: %d", r.code)
	}
}

type httpResult struct {
	code int
	body string
}

// call sends one request to bitd with an optional bearer token and JSON body.
func call(t *testing.T, s *bitdtest.Server, method, path, token string, body any) httpResult {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := jsonx.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.Endpoint+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return httpResult{res.StatusCode, string(b)}
}
