package core

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Fetcher sends one HTTP request and returns its answer: the client's
// transport. The native build backs it with net/http (DefaultFetcher,
// WithHTTPClient, WithTransport); a js/wasm build has no default, and the
// program supplies one built on the host's fetch (the bitkit wasm client and
// Worker do), so that a browser build links no net/http.
//
// Fetch must honour ctx: when it ends before the answer, Fetch returns an
// error, and when it ends while the body is read, reads fail. Fetch closes
// req.Body (when it is an io.Closer) once sent; the caller closes
// Response.Body. A non-2xx status is an answer, not an error. Redirects must
// not be followed. Implementations are safe for concurrent use.
type Fetcher interface {
	Fetch(ctx context.Context, req *Request) (*Response, error)
}

// FetcherFunc adapts a function to the Fetcher interface.
type FetcherFunc func(ctx context.Context, req *Request) (*Response, error)

// Fetch calls f(ctx, req).
func (f FetcherFunc) Fetch(ctx context.Context, req *Request) (*Response, error) { return f(ctx, req) }

// Request is an HTTP request given to a Fetcher.
type Request struct {
	// Method is the HTTP method ("GET", "POST", …).
	Method string
	// URL is the absolute URL.
	URL string
	// Header holds the request headers (canonical keys; never nil).
	Header Header
	// Body is the request body; nil for none.
	Body io.Reader
	// GetBody returns a fresh copy of Body for a replay (retry, re-login);
	// nil when the body cannot be replayed (a streamed upload).
	GetBody func() (io.Reader, error)
	// ContentLength is the body's length in bytes when known, else 0 (with
	// a Body) or -1.
	ContentLength int64
}

// clone returns a copy of r with its own Header; the body is shared.
func (r *Request) clone() *Request {
	c := *r
	c.Header = r.Header.Clone()
	return &c
}

// replay returns a copy of r with a fresh body, or an error when the body
// cannot be rebuilt.
func (r *Request) replay() (*Request, error) {
	c := r.clone()
	if r.Body == nil {
		return c, nil
	}
	if r.GetBody == nil {
		return nil, errors.New("core: the request body cannot be sent twice")
	}
	b, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	c.Body = b
	return c, nil
}

func (r *Request) closeBody() {
	if c, ok := r.Body.(io.Closer); ok {
		c.Close()
	}
}

// Response is the answer a Fetcher returns.
type Response struct {
	// StatusCode is the HTTP status (200, 404, …).
	StatusCode int
	// Header holds the response headers (canonical keys; never nil).
	Header Header
	// Body streams the response body; the caller closes it.
	Body io.ReadCloser
}

// Header is a set of HTTP header fields keyed by canonical name
// ("Content-Type"), like net/http's Header.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if vs := h[CanonicalHeaderKey(key)]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Set replaces the values of key with v.
func (h Header) Set(key, v string) { h[CanonicalHeaderKey(key)] = []string{v} }

// Add appends v to the values of key.
func (h Header) Add(key, v string) {
	k := CanonicalHeaderKey(key)
	h[k] = append(h[k], v)
}

// Del removes key.
func (h Header) Del(key string) { delete(h, CanonicalHeaderKey(key)) }

// Clone returns a deep copy of h (an empty Header for nil).
func (h Header) Clone() Header {
	c := make(Header, len(h))
	for k, vs := range h {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// CanonicalHeaderKey returns the canonical form of a header name: the first
// letter and every letter after a hyphen upper case, the rest lower case
// ("content-type" → "Content-Type").
func CanonicalHeaderKey(s string) string {
	upper := true
	b := []byte(s)
	changed := false
	for i, c := range b {
		if c == ' ' || c >= 0x7f {
			return s // not a token: leave it alone, as net/textproto does
		}
		want := c
		if upper && 'a' <= c && c <= 'z' {
			want = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			want = c - 'A' + 'a'
		}
		if want != c {
			b[i], changed = want, true
		}
		upper = c == '-'
	}
	if !changed {
		return s
	}
	return string(b)
}

// statusText is the reason phrase of the statuses the API answers.
func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 422:
		return "Unprocessable Entity"
	case 429:
		return "Too Many Requests"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return ""
}

// parseHTTPDate parses the date forms of Retry-After (RFC 1123 with GMT,
// RFC 850, ANSI C), as net/http's ParseTime does.
func parseHTTPDate(s string) (time.Time, bool) {
	for _, layout := range []string{"Mon, 02 Jan 2006 15:04:05 GMT", time.RFC850, time.ANSIC} {
		if v, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return v, true
		}
	}
	return time.Time{}, false
}

// WithFetcher sets the base transport that the client's user-agent, auth and
// retry layers wrap. It replaces WithHTTPClient and WithTransport (the last
// of the three given wins). In a js/wasm build it is how a program without
// the bitkit wasm client supplies a transport (or set DefaultFetcher).
func WithFetcher(f Fetcher) Option {
	return func(c *Client) error {
		if f == nil {
			return errors.New("core: WithFetcher: nil Fetcher")
		}
		c.base = f
		return nil
	}
}
