package core

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// noAuthHeader marks a request that must go out without credentials; the
// auth transport removes it.
const noAuthHeader = "X-Bitkit-No-Auth"

// uaFetcher sets the User-Agent header.
type uaFetcher struct {
	base Fetcher
	ua   string
}

func (t *uaFetcher) Fetch(ctx context.Context, req *Request) (*Response, error) {
	if t.ua == "" || req.Header.Get("User-Agent") != "" {
		return t.base.Fetch(ctx, req)
	}
	r := req.clone()
	r.Header.Set("User-Agent", t.ua)
	return t.base.Fetch(ctx, r)
}

// authenticator supplies the Authorization token of a client.
type authenticator interface {
	// token returns the bearer token to send. stale, when non-empty, is a
	// token the server rejected: return a different one (log in again).
	token(ctx context.Context, stale string) (string, error)
	// refreshable reports whether a 401 can be cured by token(ctx, stale).
	refreshable() bool
}

// staticAuth is an API key or a fixed access token.
type staticAuth struct{ tok string }

func (s staticAuth) token(context.Context, string) (string, error) { return s.tok, nil }
func (staticAuth) refreshable() bool                               { return false }

// authFetcher adds the Authorization header to requests for the client's
// own endpoint (never to another host, such as a download URL elsewhere) and,
// for refreshable credentials, logs in again once and replays the request
// once after a 401 when its body can be replayed.
type authFetcher struct {
	base Fetcher
	c    *Client
}

func (t *authFetcher) Fetch(ctx context.Context, req *Request) (*Response, error) {
	skip := req.Header.Get(noAuthHeader) != ""
	a := t.c.auth
	if skip || a == nil || !t.c.sameOrigin(req.URL) {
		if skip {
			req = req.clone()
			req.Header.Del(noAuthHeader)
		}
		return t.base.Fetch(ctx, req)
	}
	tok, err := a.token(ctx, "")
	if err != nil {
		req.closeBody()
		return nil, err
	}
	r := req.clone()
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := t.base.Fetch(ctx, r)
	if err != nil || resp.StatusCode != 401 || !a.refreshable() {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // a streamed body cannot be sent twice
	}
	tok2, err := a.token(ctx, tok)
	if err != nil || tok2 == tok {
		return resp, nil
	}
	drain(resp)
	r2, err := req.replay()
	if err != nil {
		return nil, err
	}
	r2.Header.Set("Authorization", "Bearer "+tok2)
	return t.base.Fetch(ctx, r2)
}

// sameOrigin reports whether rawURL has the scheme and host of the endpoint.
func (c *Client) sameOrigin(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Host == c.endpoint.Host && u.Scheme == c.endpoint.Scheme
}

// drain reads a little of an unwanted answer (so the connection can be
// reused) and closes it.
func drain(resp *Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// RetryPolicy says which failed requests are retried and how long to wait.
//
// A request is retried when it failed with a transport error before any
// answer arrived, or was answered 429 or 503 (waiting for Retry-After when
// given), or 500, 502, 504 or another 5xx except 501 and 507 (a database
// over its storage limit stays so until data is deleted). Only requests that are
// safe to replay are retried: GET, HEAD, OPTIONS, PUT and DELETE, and POST or
// PATCH only when they carry an Idempotency-Key header (reused by every
// attempt). A request whose body cannot be rebuilt (no GetBody, such as a
// streamed upload) is never retried.
//
// Waits are capped exponential backoff with full jitter: before attempt n+1
// the client sleeps a random duration in [0, min(MaxDelay, BaseDelay·2^n)).
// A Retry-After answer is honoured instead, when it is at most MaxRetryAfter;
// a longer one is returned to the caller at once. Every wait ends early when
// the request's context ends.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts including the first (default 4;
	// 1 disables retries).
	MaxAttempts int
	// BaseDelay is the first backoff ceiling (default 200ms).
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling (default 5s).
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits for (default 60s).
	MaxRetryAfter time.Duration
	// Rand returns a random number in [0, 1) for the jitter (default math/rand/v2).
	Rand func() float64
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 4
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = 5 * time.Second
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = time.Minute
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Backoff returns the jittered wait before attempt n+1 (n ≥ 1 failed attempts so far).
func (p RetryPolicy) Backoff(n int) time.Duration {
	p = p.withDefaults()
	ceil := p.BaseDelay
	for i := 1; i < n && ceil < p.MaxDelay; i++ {
		ceil *= 2
	}
	if ceil > p.MaxDelay {
		ceil = p.MaxDelay
	}
	return time.Duration(p.Rand() * float64(ceil))
}

// retryFetcher retries failed requests according to a RetryPolicy.
type retryFetcher struct {
	base   Fetcher
	policy RetryPolicy
	clock  Clock
}

func replayable(req *Request) bool {
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
	default:
		if req.Header.Get("Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.GetBody != nil
}

func retryableStatus(code int) bool {
	// 507: bitd's storage_limit_exceeded, which lasts until data is deleted.
	return code == 429 || (code >= 500 && code != 501 && code != 507 && code <= 599)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, ok := parseHTTPDate(h); ok {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func (t *retryFetcher) Fetch(ctx context.Context, req *Request) (*Response, error) {
	if t.policy.MaxAttempts <= 1 || !replayable(req) {
		return t.base.Fetch(ctx, req)
	}
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			var err error
			if r, err = req.replay(); err != nil {
				return nil, err
			}
		}
		resp, err := t.base.Fetch(ctx, r)
		if attempt >= t.policy.MaxAttempts || ctx.Err() != nil {
			return resp, err
		}
		var wait time.Duration
		switch {
		case err != nil:
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			wait = t.policy.Backoff(attempt)
		case retryableStatus(resp.StatusCode):
			wait = t.policy.Backoff(attempt)
			if resp.StatusCode == 429 || resp.StatusCode == 503 {
				if d, ok := retryAfter(resp.Header.Get("Retry-After"), t.clock.Now()); ok {
					if d > t.policy.MaxRetryAfter || pastDeadline(ctx, d) {
						return resp, nil // waiting cannot help: answer now
					}
					wait = d
				}
			}
			drain(resp)
		default:
			return resp, nil
		}
		if serr := t.clock.Sleep(ctx, wait); serr != nil {
			return nil, serr
		}
	}
}

// pastDeadline reports whether waiting d would end after ctx's deadline.
func pastDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < d
}
