//go:build !js

package core

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
)

// DefaultFetcher is the base transport of clients given none of
// WithFetcher, WithHTTPClient and WithTransport. In native builds it sends
// through net/http's DefaultTransport; in js/wasm builds it is nil until the
// program sets it (the bitkit wasm client and Worker set one built on fetch).
// Set it before creating clients.
//
// A native client that keeps the default transport trusts, besides the
// system's roots, the CA file named by $BITKIT_CA_CERT (EnvCACert).
var DefaultFetcher Fetcher = defaultFetcher

var defaultFetcher Fetcher = httpFetcher{hc: &http.Client{CheckRedirect: noRedirect}}

// nativeConfig holds WithHTTPClient, WithTransport and WithRootCAs.
type nativeConfig struct {
	hc    *http.Client
	rt    http.RoundTripper
	roots *x509.CertPool
}

// fetcher returns the Fetcher of the options given, or nil for none.
func (n nativeConfig) fetcher() Fetcher {
	if n.hc == nil && n.rt == nil && n.roots == nil {
		return envFetcher()
	}
	hc := &http.Client{}
	if n.hc != nil {
		cp := *n.hc
		hc = &cp
	}
	if n.rt != nil {
		hc.Transport = n.rt
	}
	if n.roots != nil {
		rt, err := withRoots(hc.Transport, n.roots)
		if err != nil {
			return errFetcher{err}
		}
		hc.Transport = rt
	}
	hc.CheckRedirect = noRedirect
	return httpFetcher{hc: hc}
}

// WithHTTPClient makes the client send through a copy of hc: its Transport
// becomes the base transport (http.DefaultTransport when nil) and its
// Timeout and Jar are kept; redirects are never followed (the API answers
// none, and following one could carry credentials elsewhere). hc itself is
// never modified. Native builds only.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("core: WithHTTPClient: nil *http.Client")
		}
		c.native.hc, c.base = hc, nil
		return nil
	}
}

// WithTransport sets the net/http base transport that the client's
// user-agent, auth and retry layers wrap (default http.DefaultTransport).
// Native builds only; see WithFetcher for any build.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) error {
		if rt == nil {
			return errors.New("core: WithTransport: nil http.RoundTripper")
		}
		c.native.rt, c.base = rt, nil
		return nil
	}
}

// noRedirect stops at redirects: the API never answers one, and following a
// redirect could carry the Authorization header somewhere else.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// httpFetcher is a Fetcher over a net/http client.
type httpFetcher struct{ hc *http.Client }

func (f httpFetcher) Fetch(ctx context.Context, req *Request) (*Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, req.Method, req.URL, req.Body)
	if err != nil {
		req.closeBody()
		return nil, err
	}
	hreq.Header = http.Header(req.Header.Clone())
	if req.Body != nil {
		hreq.ContentLength = req.ContentLength
		if req.ContentLength < 0 {
			hreq.ContentLength = 0
		}
		if req.GetBody != nil {
			hreq.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return io.NopCloser(b), nil
			}
		}
	}
	resp, err := f.hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	return &Response{StatusCode: resp.StatusCode, Header: Header(resp.Header), Body: resp.Body}, nil
}
