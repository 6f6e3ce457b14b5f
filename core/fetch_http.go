//go:build !js

package core

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"sync"
)

// DefaultFetcher is the base transport of clients given none of
// WithFetcher, WithHTTPClient and WithTransport. In native builds it sends
// through core's own transport (net/http's defaults, HTTP/1.1 with
// keep-alive; see WithHTTP2); in js/wasm builds it is nil until the program
// sets it (the bitkit wasm client and Worker set one built on fetch). Set it
// before creating clients.
//
// A native client that keeps the default transport trusts, besides the
// system's roots, the CA file named by $BITKIT_CA_CERT (EnvCACert).
var DefaultFetcher Fetcher = defaultFetcher

var defaultFetcher Fetcher = httpFetcher{hc: &http.Client{Transport: coreTransport(false), CheckRedirect: noRedirect}}

// coreTransport is core's own transport, HTTP/1.1 only (false) or HTTP/1.1
// and HTTP/2 (true, WithHTTP2). HTTP/1.1 is the default because Go's
// HTTP/2, on both ends, costs more than TLS itself: measured against bitd,
// HTTPS over HTTP/1.1 serves 0.9–0.97× the requests of plain HTTP, HTTPS
// over HTTP/2 0.65–0.7×, and a handler that does nothing fares the same
// (docs/benchmarks.md, (f)). Many concurrent requests then use several
// keep-alive connections instead of one multiplexed one, so more idle
// connections per host are kept than net/http's two.
type coreTransport bool

func (h2 coreTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return h2.transport().RoundTrip(r)
}

// transport returns the transport behind h2, made at first use (so that
// changes a program makes to http.DefaultTransport at start-up, such as its
// Proxy, are kept). A program that replaced http.DefaultTransport with a
// RoundTripper of its own (a tracing wrapper, say) keeps it: core sends
// through it as it is.
func (h2 coreTransport) transport() http.RoundTripper {
	h1, both := coreTransports()
	if h1 == nil {
		return http.DefaultTransport
	}
	if h2 {
		return both
	}
	return h1
}

// idleConnsPerHost is how many idle connections core's transports keep
// per host.
const idleConnsPerHost = 64

var coreTransports = sync.OnceValues(func() (h1, both *http.Transport) {
	def, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, nil
	}
	return newTransport(def, false), newTransport(def, true)
})

// newTransport clones def, http.DefaultTransport (proxy from the
// environment, dial and TLS handshake timeouts), to speak HTTP/1.1, and
// HTTP/2 when h2.
func newTransport(def *http.Transport, h2 bool) *http.Transport {
	t := def.Clone()
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(h2)
	t.Protocols = p
	t.ForceAttemptHTTP2 = h2
	t.TLSNextProto = nil
	if t.TLSClientConfig != nil {
		// net/http wrote its ALPN list into the default transport's TLS
		// configuration; offering "h2" and then speaking HTTP/1.1 would
		// break, so the list is rebuilt from Protocols.
		t.TLSClientConfig = t.TLSClientConfig.Clone()
		t.TLSClientConfig.NextProtos = nil
	}
	t.MaxIdleConnsPerHost = idleConnsPerHost
	return t
}

// WithHTTP2 lets core's own transport speak HTTP/2 when the server offers
// it (by TLS ALPN, so over HTTPS only): all concurrent requests to a server
// then share one connection. The default is HTTP/1.1 with keep-alive,
// which costs less CPU on both ends (see DefaultFetcher). It applies to
// core's own transport only: one given with WithTransport or
// WithHTTPClient chooses its protocols itself. Native builds only.
func WithHTTP2() Option {
	return func(c *Client) error {
		c.native.http2, c.base = true, nil
		return nil
	}
}

// nativeConfig holds WithHTTPClient, WithTransport, WithRootCAs and
// WithHTTP2.
type nativeConfig struct {
	hc    *http.Client
	rt    http.RoundTripper
	roots *x509.CertPool
	http2 bool
}

// fetcher returns the Fetcher of the options given, or nil for none.
func (n nativeConfig) fetcher() Fetcher {
	if n.hc == nil && n.rt == nil && n.roots == nil {
		return envFetcher(n.http2)
	}
	hc := &http.Client{}
	if n.hc != nil {
		cp := *n.hc
		hc = &cp
	}
	if n.rt != nil {
		hc.Transport = n.rt
	}
	if n.http2 {
		if hc.Transport != nil {
			return errFetcher{errors.New("core: WithHTTP2 applies to core's own transport; a transport given with WithTransport or WithHTTPClient chooses its protocols itself (set its Protocols or ForceAttemptHTTP2)")}
		}
		hc.Transport = coreTransport(true).transport()
	}
	if hc.Transport == nil {
		hc.Transport = coreTransport(false).transport()
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
// becomes the base transport (core's own when nil) and its
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
// user-agent, auth and retry layers wrap (default: core's own, see
// DefaultFetcher).
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
