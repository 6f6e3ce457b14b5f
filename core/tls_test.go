//go:build !js

package core_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
)

// lastProto is the HTTP major version of tlsServer's last request.
var lastProto atomic.Int32

// tlsServer is an HTTPS test server answering every request with an empty
// database list, and the PEM file of its certificate (its own CA).
func tlsServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastProto.Store(int32(r.ProtoMajor))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"databases":[]}`))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, path
}

func isUnknownAuthority(err error) bool {
	var uae x509.UnknownAuthorityError
	return errors.As(err, &uae)
}

func TestWithRootCAs(t *testing.T) {
	srv, caFile := tlsServer(t)
	noRetry := core.WithRetryPolicy(core.RetryPolicy{MaxAttempts: 1})
	c, _ := core.NewClient(srv.URL, core.WithAPIKey("v2_x"), noRetry)
	if _, err := c.ListDatabases(t.Context()); !isUnknownAuthority(err) {
		t.Fatalf("without the CA: %v, want an unknown-authority error", err)
	}
	pool, err := core.LoadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), core.WithRootCAs(pool), noRetry)
	if _, err := c.ListDatabases(t.Context()); err != nil {
		t.Fatalf("with WithRootCAs: %v", err)
	}
	if p := lastProto.Load(); p != 1 {
		t.Fatalf("WithRootCAs: HTTP/%d, want HTTP/1.1 (core's default)", p)
	}
	// WithHTTP2: the same over HTTP/2.
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), core.WithRootCAs(pool), core.WithHTTP2(), noRetry)
	if _, err := c.ListDatabases(t.Context()); err != nil {
		t.Fatalf("with WithRootCAs + WithHTTP2: %v", err)
	}
	if p := lastProto.Load(); p != 2 {
		t.Fatalf("WithRootCAs + WithHTTP2: HTTP/%d, want HTTP/2", p)
	}
	// WithHTTP2 with a transport of the caller's: it decides, so it is refused.
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), core.WithTransport(&http.Transport{}), core.WithHTTP2(), noRetry)
	if _, err := c.ListDatabases(t.Context()); err == nil || !strings.Contains(err.Error(), "chooses its protocols itself") {
		t.Fatalf("WithHTTP2 + WithTransport: %v", err)
	}
	// On a caller's *http.Transport: a copy gets the roots.
	tr := &http.Transport{}
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), core.WithTransport(tr), core.WithRootCAs(pool), noRetry)
	if _, err := c.ListDatabases(t.Context()); err != nil {
		t.Fatalf("WithTransport + WithRootCAs: %v", err)
	}
	if p := lastProto.Load(); p != 2 {
		t.Fatalf("WithTransport + WithRootCAs: HTTP/%d, want HTTP/2 as the transport would have", p)
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.RootCAs != nil {
		t.Fatal("WithRootCAs changed the caller's transport")
	}
	// On a transport it cannot change: a clear error.
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), core.WithTransport(roundTripFunc(http.DefaultTransport.RoundTrip)), core.WithRootCAs(pool), noRetry)
	if _, err := c.ListDatabases(t.Context()); err == nil || !strings.Contains(err.Error(), "not an *http.Transport") {
		t.Fatalf("WithRootCAs on a custom RoundTripper: %v", err)
	}
	if _, err := core.NewClient(srv.URL, core.WithRootCAs(nil)); err == nil {
		t.Fatal("WithRootCAs(nil) accepted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestEnvCACert: BITKIT_CA_CERT adds a CA to the default transport.
func TestEnvCACert(t *testing.T) {
	srv, caFile := tlsServer(t)
	noRetry := core.WithRetryPolicy(core.RetryPolicy{MaxAttempts: 1})
	t.Setenv(core.EnvCACert, caFile)
	c, _ := core.NewClient(srv.URL, core.WithAPIKey("v2_x"), noRetry)
	if _, err := c.ListDatabases(t.Context()); err != nil {
		t.Fatalf("with $BITKIT_CA_CERT: %v", err)
	}
	if p := lastProto.Load(); p != 1 {
		t.Fatalf("with $BITKIT_CA_CERT: HTTP/%d, want HTTP/1.1", p)
	}
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), core.WithHTTP2(), noRetry)
	if _, err := c.ListDatabases(t.Context()); err != nil {
		t.Fatalf("with $BITKIT_CA_CERT and WithHTTP2: %v", err)
	}
	if p := lastProto.Load(); p != 2 {
		t.Fatalf("with $BITKIT_CA_CERT and WithHTTP2: HTTP/%d, want HTTP/2", p)
	}
	// Unset: refused again (the system's roots only).
	t.Setenv(core.EnvCACert, "")
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), noRetry)
	if _, err := c.ListDatabases(t.Context()); !isUnknownAuthority(err) {
		t.Fatalf("without $BITKIT_CA_CERT: %v, want an unknown-authority error", err)
	}
	// A missing file is named in the error.
	t.Setenv(core.EnvCACert, filepath.Join(t.TempDir(), "missing.pem"))
	c, _ = core.NewClient(srv.URL, core.WithAPIKey("v2_x"), noRetry)
	if _, err := c.ListDatabases(t.Context()); err == nil || !strings.Contains(err.Error(), "BITKIT_CA_CERT") {
		t.Fatalf("missing $BITKIT_CA_CERT file: %v", err)
	}
}
