//go:build !js

package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
)

// EnvCACert names a PEM file of CA certificates that native clients trust
// in addition to the system's, such as the CA of `bitd dev --tls`
// (demo.env sets it). It applies to clients that use the default transport
// (no WithHTTPClient, WithTransport, WithFetcher or WithRootCAs).
const EnvCACert = "BITKIT_CA_CERT"

// WithRootCAs makes the client verify the server's certificate against
// pool instead of the system's roots (tls.Config.RootCAs). It applies to
// the default transport, or to the *http.Transport given by WithTransport
// or WithHTTPClient (a copy is changed, never the caller's). Native builds
// only; a browser trusts what the browser trusts.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) error {
		if pool == nil {
			return errors.New("core: WithRootCAs: nil *x509.CertPool; load one with x509.NewCertPool and AppendCertsFromPEM")
		}
		c.native.roots, c.base = pool, nil
		return nil
	}
}

// LoadCAFile reads a PEM file of CA certificates into a pool holding the
// system's roots and them, for WithRootCAs.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("core: CA certificate file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("core: CA certificate file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// withRoots returns rt with its TLS configuration trusting pool: a clone of
// an *http.Transport.
func withRoots(rt http.RoundTripper, pool *x509.CertPool) (http.RoundTripper, error) {
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("core: WithRootCAs: the transport is a %T, not an *http.Transport; set RootCAs in its own TLS configuration instead", rt)
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.RootCAs = pool
	if t.Protocols == nil && t.TLSNextProto == nil && slices.Contains(t.TLSClientConfig.NextProtos, "h2") {
		// The original spoke HTTP/2 by default; the clone, whose TLS
		// configuration is now its own, must be told to, or it would offer
		// h2 by ALPN and then speak HTTP/1.1.
		t.ForceAttemptHTTP2 = true
	}
	return t, nil
}

// envFetchers are the transports of BITKIT_CA_CERT files, one per file
// name and protocol set, so that clients share their connections like
// DefaultFetcher's.
var envFetchers sync.Map // path, or "h2 "+path → Fetcher

// http2Fetcher is WithHTTP2's transport without a BITKIT_CA_CERT file.
var http2Fetcher Fetcher = httpFetcher{hc: &http.Client{Transport: coreTransport(true), CheckRedirect: noRedirect}}

// envFetcher is core's own transport (HTTP/2 too when h2) trusting the
// system's roots and the CA file named by BITKIT_CA_CERT. Without that
// file it is nil (DefaultFetcher) or, for h2, the HTTP/2 transport; a
// program that replaced DefaultFetcher gets it for h2 only.
func envFetcher(h2 bool) Fetcher {
	path := os.Getenv(EnvCACert)
	if path == "" || (!h2 && DefaultFetcher != defaultFetcher) {
		if h2 {
			return http2Fetcher
		}
		return nil
	}
	key := path
	if h2 {
		key = "h2 " + path
	}
	if f, ok := envFetchers.Load(key); ok {
		return f.(Fetcher)
	}
	pool, err := LoadCAFile(path)
	if err != nil {
		// Not cached: a file created later is read then.
		return errFetcher{fmt.Errorf("%w (from $%s; unset it or point it at the PEM file of the server's CA)", err, EnvCACert)}
	}
	rt, err := withRoots(coreTransport(h2).transport(), pool)
	if err != nil { // http.DefaultTransport is a RoundTripper of the program's
		return errFetcher{fmt.Errorf("%w (from $%s)", err, EnvCACert)}
	}
	f, _ := envFetchers.LoadOrStore(key, httpFetcher{hc: &http.Client{Transport: rt, CheckRedirect: noRedirect}})
	return f.(Fetcher)
}

// errFetcher fails every request with err: a transport that could not be
// built.
type errFetcher struct{ err error }

func (f errFetcher) Fetch(_ context.Context, req *Request) (*Response, error) {
	req.closeBody()
	return nil, f.err
}
