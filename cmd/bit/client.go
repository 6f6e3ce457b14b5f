package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// Environment variables the CLI reads.
const (
	envAPIKey   = "BITKIT_API_KEY"
	envBitioKey = "BITIO_KEY" // python-bitdotio's `bit` reads this one
	envEndpoint = "BITKIT_ENDPOINT"
	envPassword = "BITKIT_PASSWORD"
	envCacheDir = "BITKIT_CACHE_DIR"
	envPGAddr   = "BITKIT_PG_ADDR"
	envCACert   = core.EnvCACert // the server's CA file (bitd dev --tls)
)

// endpoint is --endpoint, else $BITKIT_ENDPOINT, else core's default.
func (inv *invocation) endpoint() string {
	if e := inv.str("--endpoint"); e != "" {
		return e
	}
	if e := inv.app.getenv(envEndpoint); e != "" {
		return e
	}
	return core.DefaultEndpoint
}

// cacheDir is where login sessions live: $BITKIT_CACHE_DIR, else
// os.UserCacheDir()/bitkit (core's default for its file token cache).
func (inv *invocation) cacheDir() string {
	if d := inv.app.getenv(envCacheDir); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		return ""
	}
	return filepath.Join(base, "bitkit")
}

// apiKey is -k, else $BITKIT_API_KEY, else $BITIO_KEY; "" when none.
func (inv *invocation) apiKey() string {
	if k := inv.str("--key"); k != "" {
		return k
	}
	if k := inv.app.getenv(envAPIKey); k != "" {
		return k
	}
	return inv.app.getenv(envBitioKey)
}

func (inv *invocation) baseOptions() []core.Option {
	opts := []core.Option{core.WithUserAgent("bit/" + cliVersion() + " bitkit-go/" + core.Version)}
	if ca := inv.app.getenv(envCACert); ca != "" {
		// The server's CA (e.g. bitd dev --tls's), trusted with the system's roots.
		pool, err := core.LoadCAFile(ca)
		opts = append(opts, func(c *core.Client) error {
			if err != nil {
				return fmt.Errorf("$%s: %w", envCACert, err)
			}
			return core.WithRootCAs(pool)(c)
		})
	}
	if a := inv.str("--account"); a != "" {
		opts = append(opts, core.WithAccount(a))
	}
	return opts
}

// tabularClient is the start of every command whose answer prints as JSON,
// a table or CSV: it checks --format first (a usage error needs no server),
// then builds the client.
func (inv *invocation) tabularClient() (*core.Client, error) {
	if _, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV); err != nil {
		return nil, err
	}
	return inv.client()
}

// client builds the API client with the caller's credentials: -k, then the
// key environment variables, then the `bit login` session for the endpoint.
// Extra options are applied last.
func (inv *invocation) client(extra ...core.Option) (*core.Client, error) {
	opts := inv.baseOptions()
	if k := inv.apiKey(); k != "" {
		opts = append(opts, core.WithAPIKey(k))
		return inv.newClient(append(opts, extra...)...)
	}
	probe, err := inv.newClient()
	if err != nil {
		return nil, err
	}
	user, err := loadSession(inv.cacheDir(), probe.Endpoint())
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, fmt.Errorf("no credentials for %s: pass an API key with -k/--key or $%s (or $%s), or run `bit login -u USER` first", probe.Endpoint(), envAPIKey, envBitioKey)
	}
	sc := &sessionCache{inner: core.NewFileTokenCache(inv.cacheDir())}
	inv.session = &session{user: user, endpoint: probe.Endpoint(), cache: sc}
	// No password: the cached session is used, its refresh token traded
	// for a new access token when the old one expires, until the session
	// ends (idle or absolute lifetime, logout, password change); then core
	// fails without a password to log in with, and report turns that
	// failure into advice (see session.expiredError).
	opts = append(opts, core.WithCredentials(core.UsernamePassword(user, "", core.WithTokenCache(sc), core.WithRefreshSkew(0))))
	return inv.newClient(append(opts, extra...)...)
}

// newClient is core.NewClient for the endpoint; its errors are about flag or
// environment values (endpoint, account name), so they are usage errors.
func (inv *invocation) newClient(opts ...core.Option) (*core.Client, error) {
	c, err := core.NewClient(inv.endpoint(), opts...)
	if err != nil {
		return nil, usagef(inv.cmd, "%s", strings.TrimPrefix(err.Error(), "core: "))
	}
	return c, nil
}

// session is the `bit login` session a command runs with.
type session struct {
	user, endpoint string
	cache          *sessionCache
}

// expiredError replaces the error of a command whose session token was
// missing or expired.
func (s *session) expiredError() error {
	return fmt.Errorf("the login session of %q at %s has expired or was revoked: run `bit login -u %s` again, or pass an API key with -k", s.user, s.endpoint, s.user)
}

// sessionCache wraps core's file token cache and remembers whether a fresh
// token was found, so that an expired session is reported as such.
type sessionCache struct {
	inner core.TokenCache

	mu     sync.Mutex
	expiry time.Time // of the last token stored
	token  string    // the last fresh token seen (for bit connect and bit psql)
	gets   int
	stale  bool // no usable token: none, an expired one, or a second lookup (after a 401)
}

func (s *sessionCache) Get(ctx context.Context, key string) (core.CachedToken, bool, error) {
	t, ok, err := s.inner.Get(ctx, key)
	s.mu.Lock()
	s.gets++
	if err != nil || !ok || !time.Now().Before(t.Expiry) || s.gets > 1 {
		s.stale = true
	} else {
		s.token = t.AccessToken
	}
	s.mu.Unlock()
	return t, ok, err
}

func (s *sessionCache) Put(ctx context.Context, key string, t core.CachedToken) error {
	s.mu.Lock()
	s.expiry, s.token = t.Expiry, t.AccessToken
	s.stale = false // refreshed: the session goes on
	s.mu.Unlock()
	return s.inner.Put(ctx, key, t)
}

// Lock is the file cache's lock, so that two commands never trade the
// session's refresh token at once (see core.TokenLocker).
func (s *sessionCache) Lock(ctx context.Context, key string) (func(), error) {
	if l, ok := s.inner.(core.TokenLocker); ok {
		return l.Lock(ctx, key)
	}
	return func() {}, nil
}

// lastToken is the last fresh token seen, or "".
func (s *sessionCache) lastToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// putExpiry is the expiry of the last token stored, or nil.
func (s *sessionCache) putExpiry() *time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expiry.IsZero() {
		return nil
	}
	t := s.expiry.UTC().Truncate(time.Second)
	return &t
}

func (s *sessionCache) Delete(ctx context.Context, key string) error {
	return s.inner.Delete(ctx, key)
}

func (s *sessionCache) wasStale() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stale
}

// sessionsFile maps endpoints to the user logged in there. It holds no
// secret: the tokens live in core's file token cache next to it.
const sessionsFile = "cli-sessions.json"

// loadSession returns the user logged in at endpoint, or "".
func loadSession(dir, endpoint string) (string, error) {
	m, err := readSessions(dir)
	if err != nil {
		return "", err
	}
	return m[endpoint], nil
}

func readSessions(dir string) (map[string]string, error) {
	m := map[string]string{}
	if dir == "" {
		return m, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, sessionsFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the login sessions: %w", err)
	}
	if err := jsonx.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("the login sessions file %s is damaged (%v): delete it and run `bit login` again", filepath.Join(dir, sessionsFile), err)
	}
	return m, nil
}

// saveSession records (user != "") or removes (user == "") the session of
// endpoint, writing a temporary file and renaming it over the old one.
func saveSession(dir, endpoint, user string) error {
	if dir == "" {
		return errors.New("no cache directory to keep the login session in: set $" + envCacheDir)
	}
	m, err := readSessions(dir)
	if err != nil {
		return err
	}
	if user == "" {
		delete(m, endpoint)
	} else {
		m[endpoint] = user
	}
	b, err := jsonx.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save the login session: %w", err)
	}
	f, err := os.CreateTemp(dir, ".sessions-*")
	if err != nil {
		return fmt.Errorf("save the login session: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save the login session: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save the login session: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, sessionsFile)); err != nil {
		return fmt.Errorf("save the login session: %w", err)
	}
	return nil
}

// fullDBName turns "db" into "account/db" with the caller's account (the
// --account one when given); "account/db" is returned as is.
func fullDBName(ctx context.Context, c *core.Client, inv *invocation, name string) (string, error) {
	if name == "" {
		return "", usagef(inv.cmd, "missing -d/--database NAME (account/db, or db in your own account)")
	}
	if strings.Contains(name, "/") {
		acct, db, _ := strings.Cut(name, "/")
		if acct == "" || db == "" || strings.Contains(db, "/") {
			return "", usagef(inv.cmd, "database name %q is not of the form account/db or db", name)
		}
		return name, nil
	}
	if a := inv.str("--account"); a != "" {
		return a + "/" + name, nil
	}
	acct, err := c.Account(ctx)
	if err != nil {
		return "", fmt.Errorf("find your account to complete the database name %q (or write it as account/%s): %w", name, name, err)
	}
	return acct.Name + "/" + name, nil
}
