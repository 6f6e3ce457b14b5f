package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// DefaultEndpoint is the endpoint NewClient uses when given "": a bitd
// started locally with its defaults.
const DefaultEndpoint = "http://127.0.0.1:8080"

// Version is the version of this client, sent in the User-Agent header.
const Version = "0.1.0"

// apiPrefix is the path prefix of the v2beta API (login and IAM paths have none).
const apiPrefix = "/v2beta"

// Client is a client of the bitkit (bit.io v2beta) HTTP API. It is safe for
// concurrent use by many goroutines; create one and reuse it.
type Client struct {
	endpoint  *url.URL
	full      Fetcher // user agent → auth → retry → base
	plain     Fetcher // user agent → retry → base, for login
	base      Fetcher
	native    nativeConfig // WithHTTPClient / WithTransport (native builds)
	userAgent string
	retry     RetryPolicy
	clock     Clock
	account   string
	auth      authenticator
	creds     Credentials
	credKind  string // "", "apikey", "token", "password"
	poll      PollPolicy
}

// Option configures a Client in NewClient. Options validate their input and
// NewClient returns the first error.
type Option func(*Client) error

// WithAPIKey authenticates every request with an API key ("v2_…").
func WithAPIKey(key string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(key) == "" {
			return errors.New("core: WithAPIKey: the API key is empty; create one with `bit key create` or POST /v2beta/api-key/")
		}
		c.auth, c.creds, c.credKind = staticAuth{tok: key}, nil, "apikey"
		return nil
	}
}

// WithToken authenticates with a static access token from /auth/v1/login.
// It is never refreshed: once it expires every call fails with an *APIError
// matching ErrUnauthorized that says so. Use UsernamePassword for refresh.
func WithToken(token string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(token) == "" {
			return errors.New("core: WithToken: the access token is empty; log in with `bit login` or use UsernamePassword")
		}
		c.auth, c.creds, c.credKind = staticAuth{tok: token}, nil, "token"
		return nil
	}
}

// WithCredentials authenticates with the given credentials, such as
// UsernamePassword(user, password).
func WithCredentials(cr Credentials) Option {
	return func(c *Client) error {
		if cr == nil {
			return errors.New("core: WithCredentials: nil credentials")
		}
		c.creds, c.auth, c.credKind = cr, nil, "password"
		return nil
	}
}

// WithUserAgent sets the User-Agent header. The default is
// "bitkit-go/<Version> (+GOOS/GOARCH)".
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if strings.ContainsAny(ua, "\r\n") {
			return errors.New("core: WithUserAgent: the user agent contains a line break")
		}
		c.userAgent = ua
		return nil
	}
}

// WithRetryPolicy replaces the retry policy (see RetryPolicy for the
// defaults). Zero fields take their defaults; MaxAttempts 1 disables retries.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.MaxAttempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 || p.MaxRetryAfter < 0 {
			return errors.New("core: WithRetryPolicy: negative attempts or delays")
		}
		c.retry = p.withDefaults()
		return nil
	}
}

// WithAccount names the account to work in: AccountID resolves it, and
// CreateDatabase creates databases in it. Default: the caller's default account.
func WithAccount(name string) Option {
	return func(c *Client) error {
		if !validAccountName(name) {
			return fmt.Errorf("core: WithAccount: %q is not an account name (1–38 characters of A-Z a-z 0-9 _ -, starting with a letter, digit or underscore)", name)
		}
		c.account = name
		return nil
	}
}

// WithClock replaces the clock used for retry backoff, job polling and token
// expiry; tests use it so that they never really sleep. Default: the real clock.
func WithClock(clk Clock) Option {
	return func(c *Client) error {
		if clk == nil {
			return errors.New("core: WithClock: nil clock")
		}
		c.clock = clk
		return nil
	}
}

func validAccountName(s string) bool {
	if len(s) < 1 || len(s) > 38 {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || (r == '-' && i > 0)
		if !ok {
			return false
		}
	}
	return true
}

// Clock is the source of time for retries, polling and token expiry.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d or until ctx ends, returning ctx.Err() in that case.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewClient returns a client of the API at endpoint (for example
// "https://bitd.example.com"; "" means DefaultEndpoint). Without an auth
// option requests are sent unauthenticated (public databases only).
func NewClient(endpoint string, opts ...Option) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("core: the endpoint is not a URL (it cannot be parsed); give an http(s) URL such as %s", DefaultEndpoint)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("core: endpoint %q is not an http(s) URL such as %s", sanitizeEndpoint(endpoint), DefaultEndpoint)
	}
	if u.User != nil || u.RawQuery != "" {
		return nil, errors.New("core: the endpoint must not carry user info or a query; pass credentials with WithAPIKey, WithToken or WithCredentials")
	}
	u.Path = strings.TrimSuffix(u.Path, apiPrefix)
	c := &Client{
		endpoint:  u,
		userAgent: fmt.Sprintf("bitkit-go/%s (+%s/%s)", Version, runtime.GOOS, runtime.GOARCH),
		retry:     RetryPolicy{}.withDefaults(),
		clock:     realClock{},
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.base == nil {
		if c.base = c.native.fetcher(); c.base == nil {
			c.base = DefaultFetcher
		}
	}
	if c.base == nil {
		return nil, errors.New("core: no HTTP transport: this js/wasm program has not set core.DefaultFetcher; pass WithFetcher, or load bitkit through the wasm client or Worker, which supply one built on fetch")
	}
	retry := &retryFetcher{base: c.base, policy: c.retry, clock: c.clock}
	c.plain = &uaFetcher{base: retry, ua: c.userAgent}
	c.full = &uaFetcher{base: &authFetcher{base: retry, c: c}, ua: c.userAgent}
	if c.creds != nil {
		c.auth = c.creds.authenticator(c)
	}
	return c, nil
}

func sanitizeEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return sanitizeURL(u)
}

// Endpoint returns the API endpoint the client talks to.
func (c *Client) Endpoint() string { return c.endpoint.String() }

// url builds an absolute URL from an API path ("/v2beta/db/") and a query.
func (c *Client) url(path string, q url.Values) *url.URL {
	u := *c.endpoint
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return &u
}

// escapeDB escapes a database name "account/db" into two path segments.
func escapeDB(name string) (string, error) {
	acct, db, ok := strings.Cut(name, "/")
	if !ok || acct == "" || db == "" || strings.Contains(db, "/") {
		return "", fmt.Errorf("core: database name %q is not of the form account/dbname", name)
	}
	return url.PathEscape(acct) + "/" + url.PathEscape(db), nil
}

// request is one API call.
type request struct {
	method  string
	path    string
	query   url.Values
	body    any    // JSON-encoded when non-nil
	raw     []byte // sent as is when body is nil and raw is non-nil
	header  Header
	idem    bool // add an Idempotency-Key (safe to replay)
	noAuth  bool
	stream  bool // caller reads the body; do returns the open response
	rawBody io.Reader
	length  int64 // Content-Length of rawBody when > 0
}

func newIdempotencyKey() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 32)
	for _, x := range b {
		out = append(out, hex[x>>4], hex[x&15])
	}
	return string(out)
}

// newRequest builds the Request of r with a replayable body.
func (c *Client) newRequest(r *request) (*Request, error) {
	req := &Request{Method: r.method, URL: c.url(r.path, r.query).String(), Header: Header{}, ContentLength: -1}
	var b []byte
	if r.body != nil {
		var err error
		if b, err = jsonx.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("core: encoding the %s %s request: %w", r.method, r.path, err)
		}
		req.Header.Set("Content-Type", "application/json")
	} else if r.raw != nil {
		b = r.raw
	}
	switch {
	case b != nil:
		req.Body = bytes.NewReader(b)
		req.GetBody = func() (io.Reader, error) { return bytes.NewReader(b), nil }
		req.ContentLength = int64(len(b))
	case r.rawBody != nil:
		req.Body = r.rawBody
		req.ContentLength = 0
		if r.length > 0 {
			req.ContentLength = r.length
		}
	}
	req.Header.Set("Accept", "application/json")
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.idem {
		req.Header.Set("Idempotency-Key", newIdempotencyKey())
	}
	if r.noAuth {
		req.Header.Set(noAuthHeader, "1")
	}
	return req, nil
}

// do sends r and decodes a 2xx JSON answer into out (when non-nil). A non-2xx
// answer becomes an *APIError. With r.stream the open response is returned
// and the caller closes its body.
func (c *Client) do(ctx context.Context, r *request, out any) (*Response, error) {
	req, err := c.newRequest(r)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, c.full, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.readError(req, resp)
	}
	if r.stream {
		return resp, nil
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp, nil
	}
	dec := jsonx.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("core: %s %s: reading the answer: %w", req.Method, sanitizeRawURL(req.URL), ctxErr)
		}
		return nil, fmt.Errorf("core: %s %s: decoding the answer: %w", req.Method, sanitizeRawURL(req.URL), err)
	}
	return resp, nil
}

// send runs req through f and turns transport errors into errors that name
// the request without any secret (a url.Error would print the full URL).
func (c *Client) send(ctx context.Context, f Fetcher, req *Request) (*Response, error) {
	resp, err := f.Fetch(ctx, req)
	if err == nil {
		if resp.Header == nil {
			resp.Header = Header{}
		}
		return resp, nil
	}
	where := req.Method + " " + sanitizeRawURL(req.URL)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("core: %s: %w", where, ctxErr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return nil, fmt.Errorf("core: %s: %w", where, err)
}

// readError reads a non-2xx answer into an *APIError and closes the body.
func (c *Client) readError(req *Request, resp *Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	e := newAPIError(req, resp, body)
	if resp.StatusCode == 401 {
		switch c.credKind {
		case "token":
			e.Message = strings.TrimSuffix(e.Message, ".") + "; the access token given with WithToken is no longer valid (expired or revoked): get a new one with `bit login` or POST /auth/v1/login, or use UsernamePassword, which refreshes tokens by itself"
		case "apikey":
			if !strings.Contains(e.Message, "bit key create") { // bitd's own message already says how
				e.Message = strings.TrimSuffix(e.Message, ".") + "; check the API key (it may have been revoked): create a new one with `bit key create`"
			}
		case "":
			e.Message = strings.TrimSuffix(e.Message, ".") + "; no credentials were given: use WithAPIKey, WithToken or WithCredentials"
		}
	}
	return e
}
