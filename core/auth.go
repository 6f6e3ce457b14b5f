package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Credentials are credentials that the client exchanges for access tokens,
// such as UsernamePassword. Pass them with WithCredentials.
type Credentials interface {
	// authenticator binds the credentials to a client.
	authenticator(c *Client) authenticator
}

// CachedToken is an access token, with the refresh token of its login
// session, kept in a TokenCache. It never holds a password.
type CachedToken struct {
	// AccessToken is the bearer token.
	AccessToken string `json:"access_token"`
	// TokenType is the token type the server named ("Bearer").
	TokenType string `json:"token_type,omitempty"`
	// Expiry is when the token stops working (zero: unknown, treated as expired).
	Expiry time.Time `json:"expiry"`
	// RefreshToken, when the server issued one, trades for a new access
	// token and refresh token (POST /auth/v1/refresh) without the password.
	// Each is good for one trade: the server rotates it.
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshExpiry is when RefreshToken stops working if unused (zero:
	// unknown). The server may end the session earlier (its absolute
	// lifetime, a logout, a password change).
	RefreshExpiry time.Time `json:"refresh_expiry"`
}

// TokenCache stores access tokens between calls and, for a file cache,
// between processes. Keys name an endpoint and a user (never a password).
// Implementations must be safe for concurrent use.
type TokenCache interface {
	// Get returns the cached token for key; ok is false when there is none.
	Get(ctx context.Context, key string) (t CachedToken, ok bool, err error)
	// Put stores t under key, replacing any previous token.
	Put(ctx context.Context, key string, t CachedToken) error
	// Delete removes the token under key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// TokenLocker is implemented by a TokenCache shared between processes (the
// file cache of NewFileTokenCache) so that only one process at a time
// refreshes the token of a key: a refresh token is good for one trade, and
// a second trade of it ends the session. Lock waits until it holds the
// lock of key or ctx ends; the caller calls unlock once.
type TokenLocker interface {
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// AuthOption configures UsernamePassword.
type AuthOption func(*passwordCreds)

// WithTokenCache sets where tokens are kept (default: a memory cache private
// to these credentials). Use NewFileTokenCache to share tokens between processes.
func WithTokenCache(tc TokenCache) AuthOption {
	return func(p *passwordCreds) {
		if tc != nil {
			p.cache = tc
		}
	}
}

// WithRefreshSkew sets how long before its expiry a token is replaced
// (default 60s). Negative values count as 0.
func WithRefreshSkew(d time.Duration) AuthOption {
	return func(p *passwordCreds) {
		if d < 0 {
			d = 0
		}
		p.skew = d
	}
}

// DefaultRefreshSkew is how long before expiry UsernamePassword replaces a token.
const DefaultRefreshSkew = 60 * time.Second

// UsernamePassword returns credentials that log in with POST /auth/v1/login
// when a token is first needed, replace the token before it expires (see
// WithRefreshSkew), replace it once after a 401 and replay the request once
// when its body can be replayed. A token is replaced with the refresh token
// of the login session when there is one (POST /auth/v1/refresh), and by
// logging in again with the password only when the session is over or
// unknown. Concurrent callers share one login or refresh; with a cache that
// is a TokenLocker, so do concurrent processes. The password stays in
// memory only; it is never cached, logged or shown in an error. With an
// empty password only the cached session is used: once it ends, calls fail.
func UsernamePassword(user, password string, opts ...AuthOption) Credentials {
	p := &passwordCreds{user: user, password: password, skew: DefaultRefreshSkew}
	for _, o := range opts {
		if o != nil {
			o(p)
		}
	}
	if p.cache == nil {
		p.cache = NewMemoryTokenCache()
	}
	return p
}

type passwordCreds struct {
	user, password string
	cache          TokenCache
	skew           time.Duration
}

func (p *passwordCreds) authenticator(c *Client) authenticator {
	return &passwordAuth{creds: p, c: c, key: cacheKey(c.endpoint.String(), p.user)}
}

// String hides the password.
func (p *passwordCreds) String() string { return fmt.Sprintf("UsernamePassword(%q, REDACTED)", p.user) }

// GoString hides the password.
func (p *passwordCreds) GoString() string { return p.String() }

// cacheKey names the token of user at endpoint.
func cacheKey(endpoint, user string) string { return endpoint + "\n" + user }

// passwordAuth is the token state of UsernamePassword credentials bound to
// one client: the current token and the login in flight, if any.
type passwordAuth struct {
	creds *passwordCreds
	c     *Client
	key   string

	mu     sync.Mutex
	cur    CachedToken
	flight *loginFlight
}

type loginFlight struct {
	done chan struct{}
	tok  CachedToken
	err  error
}

func (a *passwordAuth) refreshable() bool { return true }

func (a *passwordAuth) fresh(t CachedToken, stale string) bool {
	return t.AccessToken != "" && t.AccessToken != stale && a.c.clock.Now().Add(a.creds.skew).Before(t.Expiry)
}

// token returns a valid token, logging in (once for all concurrent callers)
// when the current one is missing, about to expire or equal to stale.
func (a *passwordAuth) token(ctx context.Context, stale string) (string, error) {
	a.mu.Lock()
	if a.fresh(a.cur, stale) {
		t := a.cur.AccessToken
		a.mu.Unlock()
		return t, nil
	}
	f := a.flight
	if f == nil {
		f = &loginFlight{done: make(chan struct{})}
		a.flight = f
		// The login outlives a caller that gives up, so that the others
		// waiting for it are not failed by that caller's context.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		go func() {
			defer cancel()
			f.tok, f.err = a.obtain(lctx, stale)
			a.mu.Lock()
			if f.err == nil {
				a.cur = f.tok
			}
			a.flight = nil
			a.mu.Unlock()
			close(f.done)
		}()
	}
	a.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.tok.AccessToken, nil
	case <-ctx.Done():
		return "", fmt.Errorf("core: waiting for the login of %q: %w", a.creds.user, ctx.Err())
	}
}

// obtain takes a fresh token from the cache, or refreshes the session, or
// logs in.
func (a *passwordAuth) obtain(ctx context.Context, stale string) (CachedToken, error) {
	cached, ok, err := a.creds.cache.Get(ctx, a.key)
	if err == nil && ok && a.fresh(cached, stale) {
		return cached, nil
	}
	if !ok || err != nil {
		cached = CachedToken{}
	}
	a.mu.Lock()
	cur := a.cur
	a.mu.Unlock()
	if cached.RefreshToken != "" || cur.RefreshToken != "" {
		t, done, err := a.refresh(ctx, stale, cur.RefreshToken)
		if done {
			return t, err
		}
		if err != nil && a.creds.password == "" {
			return CachedToken{}, fmt.Errorf("core: the login session of %q has ended and there is no password to log in again: %w", a.creds.user, err)
		}
		// The session is over (or the server refused it): log in again.
	}
	t, err := a.c.login(ctx, a.creds.user, a.creds.password)
	if err != nil {
		return CachedToken{}, err
	}
	_ = a.creds.cache.Put(ctx, a.key, t) // a cache that cannot store only costs a later login
	return t, nil
}

// refresh trades the session's refresh token for a new pair, holding the
// cache's lock of the key when it has one. The cache is read again under
// the lock: another process may have refreshed already (then its token is
// used, or its refresh token traded). done is false when the session is
// over (a 401, or no refresh token; err then says why, if the server did):
// the caller logs in with the password. Other failures (the server
// unreachable) end the attempt with the error, unless a password can log
// in instead.
func (a *passwordAuth) refresh(ctx context.Context, stale, memRefresh string) (t CachedToken, done bool, err error) {
	if l, ok := a.creds.cache.(TokenLocker); ok {
		unlock, err := l.Lock(ctx, a.key)
		if err != nil {
			return CachedToken{}, true, fmt.Errorf("core: waiting for another process refreshing the session of %q: %w", a.creds.user, err)
		}
		defer unlock()
	}
	rt := memRefresh
	if cached, ok, err := a.creds.cache.Get(ctx, a.key); err == nil && ok {
		if a.fresh(cached, stale) {
			return cached, true, nil
		}
		if cached.RefreshToken != "" {
			rt = cached.RefreshToken
		}
	}
	if rt == "" {
		return CachedToken{}, false, nil
	}
	t, err = a.c.refreshSession(ctx, rt)
	if err == nil {
		_ = a.creds.cache.Put(ctx, a.key, t)
		return t, true, nil
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.StatusCode == 401 || apiErr.StatusCode == 400) {
		// The session is over: forget its tokens, so that no later call
		// trades the dead refresh token again.
		a.mu.Lock()
		a.cur = CachedToken{}
		a.mu.Unlock()
		_ = a.creds.cache.Delete(ctx, a.key)
		return CachedToken{}, false, err
	}
	if a.creds.password != "" {
		return CachedToken{}, false, nil
	}
	return CachedToken{}, true, err
}

// forget drops the current token from memory and the cache.
func (a *passwordAuth) forget(ctx context.Context) error {
	a.mu.Lock()
	a.cur = CachedToken{}
	a.mu.Unlock()
	return a.creds.cache.Delete(ctx, a.key)
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginAnswer struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	TokenType        string `json:"token_type"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// token converts the answer, received at now, to a CachedToken.
func (ans loginAnswer) token(now time.Time) CachedToken {
	exp := ans.ExpiresIn
	if exp <= 0 {
		exp = 3600
	}
	t := CachedToken{AccessToken: ans.AccessToken, TokenType: ans.TokenType, Expiry: now.Add(time.Duration(exp) * time.Second),
		RefreshToken: ans.RefreshToken}
	if ans.RefreshToken != "" && ans.RefreshExpiresIn > 0 {
		t.RefreshExpiry = now.Add(time.Duration(ans.RefreshExpiresIn) * time.Second)
	}
	return t
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refreshSession trades a refresh token for a new pair (POST
// /auth/v1/refresh). It is never retried: the first trade may have used
// the token up, and trading it again would end the session.
func (c *Client) refreshSession(ctx context.Context, refreshToken string) (CachedToken, error) {
	now := c.clock.Now()
	req, err := c.newRequest(&request{method: "POST", path: "/auth/v1/refresh", body: refreshRequest{RefreshToken: refreshToken}})
	if err != nil {
		return CachedToken{}, errors.New("core: building the refresh request failed")
	}
	resp, err := c.send(ctx, c.plain, req)
	if err != nil {
		return CachedToken{}, fmt.Errorf("core: refreshing the session: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return CachedToken{}, c.readError(req, resp)
	}
	defer resp.Body.Close()
	var ans loginAnswer
	if err := decodeJSON(resp.Body, &ans); err != nil {
		return CachedToken{}, fmt.Errorf("core: refreshing the session: decoding the answer: %w", err)
	}
	if ans.AccessToken == "" {
		return CachedToken{}, errors.New("core: refreshing the session: the server answered no access_token")
	}
	return ans.token(now), nil
}

// login exchanges a user name and password for a token.
func (c *Client) login(ctx context.Context, user, password string) (CachedToken, error) {
	if user == "" || password == "" {
		return CachedToken{}, errors.New("core: UsernamePassword: the user name or the password is empty")
	}
	now := c.clock.Now()
	req, err := c.newRequest(&request{method: "POST", path: "/auth/v1/login",
		body: loginRequest{Username: user, Password: password}, idem: true})
	if err != nil {
		return CachedToken{}, errors.New("core: building the login request failed")
	}
	resp, err := c.send(ctx, c.plain, req)
	if err != nil {
		return CachedToken{}, fmt.Errorf("core: logging in as %q: %w", user, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := c.readError(req, resp).(*APIError)
		if err.StatusCode == 401 {
			err.Message = fmt.Sprintf("logging in as %q failed: %s; check the user name and password", user, strings.TrimSuffix(err.Message, "."))
		}
		return CachedToken{}, err
	}
	defer resp.Body.Close()
	var ans loginAnswer
	if err := decodeJSON(resp.Body, &ans); err != nil {
		return CachedToken{}, fmt.Errorf("core: logging in as %q: decoding the answer: %w", user, err)
	}
	if ans.AccessToken == "" {
		return CachedToken{}, fmt.Errorf("core: logging in as %q: the server answered no access_token", user)
	}
	return ans.token(now), nil
}

// Login gets a new token now with the client's UsernamePassword credentials
// (instead of at the first call) and caches it: a fresh one from the cache,
// else by refreshing the cached session, else by logging in with the
// password. With other credentials it does nothing.
func (c *Client) Login(ctx context.Context) error {
	a, ok := c.auth.(*passwordAuth)
	if !ok {
		return nil
	}
	a.mu.Lock()
	cur := a.cur.AccessToken
	a.mu.Unlock()
	_, err := a.token(ctx, cur)
	return err
}

// AccessToken returns the access token the client authenticates with: with
// UsernamePassword the current one (logging in first when there is none or
// it is about to expire), with WithToken that token, and "" with an API key
// or without credentials. It lets a caller keep a session without keeping
// the password (a later client uses it with WithToken); the token is a
// secret like the password, valid until it expires or Logout revokes it.
func (c *Client) AccessToken(ctx context.Context) (string, error) {
	switch a := c.auth.(type) {
	case *passwordAuth:
		return a.token(ctx, "")
	case staticAuth:
		if c.credKind == "token" {
			return a.tok, nil
		}
	}
	return "", nil
}

// Logout ends the login session on the server and deletes its tokens from
// the token cache: with a refresh token, the whole session (POST
// /auth/v1/revoke: the refresh token and every access token it issued),
// else the access token (DELETE /auth/v1/token). With WithToken it
// revokes that token (later calls of the client fail with ErrUnauthorized);
// with an API key or no credentials it does nothing. A token the server no
// longer knows is not an error.
func (c *Client) Logout(ctx context.Context) error {
	if s, ok := c.auth.(staticAuth); ok && c.credKind == "token" {
		if err := c.revokeToken(ctx, s.tok); err != nil {
			return fmt.Errorf("core: logout: the server did not revoke the token: %w", err)
		}
		return nil
	}
	a, ok := c.auth.(*passwordAuth)
	if !ok {
		return nil
	}
	a.mu.Lock()
	tok := a.cur
	a.mu.Unlock()
	if tok.AccessToken == "" {
		if t, ok, err := a.creds.cache.Get(ctx, a.key); err == nil && ok {
			tok = t
		}
	}
	var serverErr error
	switch {
	case tok.RefreshToken != "":
		serverErr = c.revokeSession(ctx, tok.RefreshToken)
	case tok.AccessToken != "":
		serverErr = c.revokeToken(ctx, tok.AccessToken)
	}
	if err := a.forget(ctx); err != nil {
		return fmt.Errorf("core: logout: deleting the cached token: %w", err)
	}
	if serverErr != nil {
		return fmt.Errorf("core: logout: the token was dropped locally but the server did not revoke it: %w", serverErr)
	}
	return nil
}

// revokeToken sends DELETE /auth/v1/token with tok; a token the server no
// longer knows (401) is not an error.
func (c *Client) revokeToken(ctx context.Context, tok string) error {
	req, err := c.newRequest(&request{method: "DELETE", path: "/auth/v1/token"})
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.send(ctx, c.plain, req)
	if err != nil {
		return err
	}
	if resp.StatusCode == 401 || (resp.StatusCode >= 200 && resp.StatusCode < 300) {
		drain(resp)
		return nil
	}
	return c.readError(req, resp)
}

// revokeSession sends POST /auth/v1/revoke with a refresh token; a session
// the server no longer knows (401) is not an error.
func (c *Client) revokeSession(ctx context.Context, refreshToken string) error {
	req, err := c.newRequest(&request{method: "POST", path: "/auth/v1/revoke", body: refreshRequest{RefreshToken: refreshToken}, idem: true})
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, c.plain, req)
	if err != nil {
		return err
	}
	if resp.StatusCode == 401 || (resp.StatusCode >= 200 && resp.StatusCode < 300) {
		drain(resp)
		return nil
	}
	return c.readError(req, resp)
}

// memoryCache is a TokenCache in process memory.
type memoryCache struct {
	mu sync.Mutex
	m  map[string]CachedToken
}

// NewMemoryTokenCache returns a TokenCache that keeps tokens in memory,
// shared by every client using it. Safe for concurrent use.
func NewMemoryTokenCache() TokenCache { return &memoryCache{m: map[string]CachedToken{}} }

func (m *memoryCache) Get(_ context.Context, key string) (CachedToken, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.m[key]
	return t, ok, nil
}

func (m *memoryCache) Put(_ context.Context, key string, t CachedToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = t
	return nil
}

func (m *memoryCache) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
	return nil
}
