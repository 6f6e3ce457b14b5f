package core

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

const (
	testUser     = "alice"
	testPassword = "correct-horse-battery-staple-9f3a"
)

// authServer is a fake API with logins: tokens are "tok-<n>", valid until revoked.
type authServer struct {
	mu        sync.Mutex
	logins    int
	valid     map[string]bool
	calls     int
	bodies    []string
	loginWait time.Duration // widens the window for concurrent callers
	expiresIn int
}

func newAuthServer() *authServer { return &authServer{valid: map[string]bool{}, expiresIn: 3600} }

func (s *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/auth/v1/login":
		var lr loginRequest
		_ = jsonx.NewDecoder(r.Body).Decode(&lr)
		if lr.Username != testUser || lr.Password != testPassword {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"wrong user name or password","code":"unauthorized"}`)
			return
		}
		time.Sleep(s.loginWait)
		s.mu.Lock()
		s.logins++
		tok := fmt.Sprintf("tok-%d", s.logins)
		s.valid[tok] = true
		s.mu.Unlock()
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":%d,"token_type":"Bearer"}`, tok, s.expiresIn)
		return
	case "/auth/v1/token":
		s.mu.Lock()
		delete(s.valid, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		s.mu.Unlock()
		io.WriteString(w, `{}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls++
	s.bodies = append(s.bodies, string(b))
	ok := s.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"the access token expired","code":"unauthorized"}`)
		return
	}
	io.WriteString(w, `{"databases":[],"query_string":"select 1","columns":[],"data":[],"id":"j1","state":"DONE"}`)
}

func (s *authServer) revokeAll() {
	s.mu.Lock()
	clear(s.valid)
	s.mu.Unlock()
}

func (s *authServer) counts() (logins, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, s.calls
}

func TestUsernamePasswordSingleFlight(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	as.loginWait = 20 * time.Millisecond
	srv := startServer(as)
	defer srv.Close()
	clk := newFakeClock()
	c, err := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, testPassword)), WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	run := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Go(func() {
				if _, err := c.ListDatabases(t.Context()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	run()
	if l, calls := as.counts(); l != 1 || calls != 100 {
		t.Fatalf("first round: logins = %d, calls = %d; want 1 login for 100 calls", l, calls)
	}
	// The token is now within the refresh skew of its expiry: one refresh for all.
	clk.Advance(time.Hour - 30*time.Second)
	run()
	if l, calls := as.counts(); l != 2 || calls != 200 {
		t.Fatalf("after expiry: logins = %d, calls = %d; want exactly one more login", l, calls)
	}
}

func TestUsernamePassword401Relogin(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	srv := startServer(as)
	defer srv.Close()
	c, err := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, testPassword)), WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	as.revokeAll() // the server forgets the token before its expiry
	res, err := c.Query(t.Context(), "a/b", "select 1")
	if err != nil {
		t.Fatal(err)
	}
	logins, calls := as.counts()
	if logins != 2 || calls != 2 || res.Query != "select 1" {
		t.Fatalf("logins = %d, calls = %d; want one re-login and one replay", logins, calls)
	}
	as.mu.Lock()
	if as.bodies[0] != as.bodies[1] || !strings.Contains(as.bodies[1], `"query_string":"select 1"`) {
		t.Fatalf("replayed body differs: %q vs %q", as.bodies[0], as.bodies[1])
	}
	as.mu.Unlock()

	// A streamed upload cannot be replayed: the 401 is returned as is.
	as.revokeAll()
	_, err = c.CreateImportJob(t.Context(), "a/b", ImportRequest{Table: "t", File: strings.NewReader("a\n1\n")})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	_, calls = as.counts()
	if calls != 3 {
		t.Fatalf("calls = %d: the streamed upload was replayed", calls)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Fatal("error contains the password")
	}
	// Still rejected after a re-login: only one replay, then the 401.
	as2 := newAuthServer()
	srv2 := startServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/v1/login" {
			as2.ServeHTTP(w, r)
			return
		}
		as2.mu.Lock()
		as2.calls++
		as2.mu.Unlock()
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"no","code":"unauthorized"}`)
	}))
	defer srv2.Close()
	c2, _ := NewClient(srv2.URL, WithCredentials(UsernamePassword(testUser, testPassword)), WithClock(newFakeClock()))
	_, err = c2.ListDatabases(t.Context())
	if l, calls := as2.counts(); !errors.Is(err, ErrUnauthorized) || l != 2 || calls != 2 {
		t.Fatalf("err = %v, logins = %d, calls = %d; want 2 logins and 2 calls then the 401", err, l, calls)
	}
}

func TestWrongPasswordError(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	srv := startServer(as)
	defer srv.Close()
	const wrong = "Wr0ng-Pa55word-xyz"
	c, _ := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, wrong)))
	_, err := c.ListDatabases(t.Context())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "check the user name and password") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(fmt.Sprintf("%v %+v %#v", err, UsernamePassword(testUser, wrong), UsernamePassword(testUser, wrong)), wrong) {
		t.Fatal("the password leaks into an error or a formatted value")
	}
}

func TestStaticToken401Message(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	srv := startServer(as)
	defer srv.Close()
	const tok = "tok-static-secret-123456"
	c, _ := NewClient(srv.URL, WithToken(tok))
	_, err := c.ListDatabases(t.Context())
	var ae *APIError
	if !errors.As(err, &ae) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(ae.Message, "no longer valid") || !strings.Contains(ae.Message, "bit login") {
		t.Fatalf("message %q does not say the token is no longer valid and how to get a new one", ae.Message)
	}
	if l, _ := as.counts(); l != 0 || strings.Contains(err.Error(), tok) {
		t.Fatalf("logins = %d; error = %v", l, err)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	srv := startServer(as)
	defer srv.Close()
	cache := NewMemoryTokenCache()
	c, _ := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, testPassword, WithTokenCache(cache))))
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	key := cacheKey(c.Endpoint(), testUser)
	if tok, ok, _ := cache.Get(t.Context(), key); !ok || tok.AccessToken != "tok-1" {
		t.Fatalf("cache after login: %v %v", tok.AccessToken, ok)
	}
	if err := c.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cache.Get(t.Context(), key); ok {
		t.Fatal("token still cached after Logout")
	}
	as.mu.Lock()
	n := len(as.valid)
	as.mu.Unlock()
	if n != 0 {
		t.Fatal("server token not revoked by Logout")
	}
	// A shared cache gives a second client the token without a login.
	c2, _ := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, testPassword, WithTokenCache(cache))))
	if _, err := c2.ListDatabases(t.Context()); err != nil {
		t.Fatal(err)
	}
	c3, _ := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, testPassword, WithTokenCache(cache))))
	if _, err := c3.ListDatabases(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l, _ := as.counts(); l != 2 {
		t.Fatalf("logins = %d, want 2 (the third client reuses the cached token)", l)
	}
}

// TestNoSecretsInErrors drives failures with every kind of secret around and
// checks no error text contains one.
func TestNoSecretsInErrors(t *testing.T) {
	t.Parallel()
	key := "v2_SECRETKEY" + strings.Repeat("k", 36)
	srv := startServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, `{"error":"boom","code":"internal"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, newFakeClock(), WithAPIKey(key))
	var errs []error
	errs = append(errs, c.RevokeAPIKey(t.Context(), key))
	_, err := c.ListDatabases(t.Context())
	errs = append(errs, err)
	// Transport error on a URL carrying the key in its query.
	dead := newTestClient(t, "http://127.0.0.1:1", newFakeClock(), WithAPIKey(key), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	errs = append(errs, dead.RevokeAPIKey(t.Context(), key))
	tc, _ := NewClient("http://127.0.0.1:1", WithToken("tok-SECRET-TOKEN-999"), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	_, err = tc.ListDatabases(t.Context())
	errs = append(errs, err)
	pc, _ := NewClient("http://127.0.0.1:1", WithCredentials(UsernamePassword("bob", testPassword)), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	_, err = pc.ListDatabases(t.Context())
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		s := fmt.Sprintf("%v %+v", err, err)
		var ae *APIError
		if errors.As(err, &ae) {
			s += ae.URL
		}
		for _, secret := range []string{key, "tok-SECRET-TOKEN-999", testPassword} {
			if strings.Contains(s, secret) {
				t.Fatalf("case %d: error %q contains a secret", i, s)
			}
		}
	}
}

// TestAccessToken keeps a session without the password: the token of a
// password client works in a WithToken client, whose Logout revokes it.
func TestAccessToken(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	srv := startServer(as)
	defer srv.Close()
	c, _ := NewClient(srv.URL, WithCredentials(UsernamePassword(testUser, testPassword)))
	tok, err := c.AccessToken(t.Context())
	if err != nil || tok != "tok-1" {
		t.Fatalf("AccessToken of a password client = %q, %v; want tok-1 (logged in)", tok, err)
	}
	again, _ := c.AccessToken(t.Context())
	as.mu.Lock()
	logins := as.logins
	as.mu.Unlock()
	if again != tok || logins != 1 {
		t.Fatalf("second AccessToken = %q after %d logins; want the same token, one login", again, logins)
	}
	resumed, err := NewClient(srv.URL, WithToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := resumed.AccessToken(t.Context()); got != tok {
		t.Fatalf("AccessToken of a token client = %q", got)
	}
	if _, err := resumed.ListDatabases(t.Context()); err != nil {
		t.Fatalf("the kept token does not work: %v", err)
	}
	if err := resumed.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	as.mu.Lock()
	live := as.valid[tok]
	as.mu.Unlock()
	if live {
		t.Fatal("Logout of a token client did not revoke the token")
	}
	if _, err := resumed.ListDatabases(t.Context()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a revoked token: err = %v, want ErrUnauthorized", err)
	}
	key, _ := NewClient(srv.URL, WithAPIKey("v2_x"))
	if got, err := key.AccessToken(t.Context()); got != "" || err != nil {
		t.Fatalf("AccessToken with an API key = %q, %v; want empty", got, err)
	}
}
