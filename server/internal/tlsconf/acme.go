package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEConfig configures NewACME.
type ACMEConfig struct {
	// Domains are the names certificates are obtained for (--acme-domain).
	Domains []string
	// Email is the ACME account's contact address (--acme-email), optional.
	Email string
	// DirectoryURL is the ACME directory (--acme-directory); empty means
	// Let's Encrypt's production directory.
	DirectoryURL string
	// CACertFile, when set, is a PEM file of the CA that signed the ACME
	// server's own HTTPS certificate (--acme-ca-cert), for a private ACME
	// server such as Pebble; empty means the system's roots.
	CACertFile string
	// CacheDir keeps the account key and the certificates (DATA/acme).
	CacheDir string
	Logger   *slog.Logger
}

// ACME obtains and renews certificates from an ACME CA, answering the
// TLS-ALPN-01 challenge on the listener it serves (which must therefore be
// reachable by the CA on port 443 of every domain). It is safe for
// concurrent use.
type ACME struct {
	cfg    ACMEConfig
	client func() *acme.Client
	m      atomic.Pointer[autocert.Manager]
	renew  sync.Mutex
}

// NewACME checks cfg and prepares the manager; certificates are obtained
// on the first handshake for a domain, or by Renew.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("--acme-domain: give the domain name(s) this server is reached by")
	}
	for i, d := range cfg.Domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || !strings.Contains(d, ".") || strings.ContainsAny(d, "/: ") {
			return nil, fmt.Errorf("--acme-domain %q: want a fully qualified domain name such as db.example.com", cfg.Domains[i])
		}
		cfg.Domains[i] = d
	}
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("ACME needs a data directory (--data) to keep its account key and certificates")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CACertFile != "" {
		pool, err := LoadCertPool(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-cert: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	a := &ACME{cfg: cfg, client: func() *acme.Client {
		return &acme.Client{DirectoryURL: cfg.DirectoryURL, HTTPClient: hc, UserAgent: "bitd"}
	}}
	a.m.Store(a.newManager(autocert.DirCache(cfg.CacheDir)))
	return a, nil
}

func (a *ACME) newManager(c autocert.Cache) *autocert.Manager {
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      c,
		HostPolicy: autocert.HostWhitelist(a.cfg.Domains...),
		Client:     a.client(),
		Email:      a.cfg.Email,
	}
}

// GetCertificate serves the certificate of the name the client asked for;
// a client that sent no name (a wire client connecting by IP address) gets
// the first domain's.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		h := *hello
		h.ServerName = a.cfg.Domains[0]
		hello = &h
	}
	cert, err := a.m.Load().GetCertificate(hello)
	if err != nil && !wantsChallenge(hello) && slices.Contains(a.cfg.Domains, strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))) {
		// Only for this server's own names: other names (scanners) are
		// refused by the host policy without a log line each.
		a.cfg.Logger.Warn("ACME: no certificate to serve", "server_name", hello.ServerName, "err", err)
	}
	return cert, err
}

func wantsChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPNProto
}

// Obtain makes sure every domain has a certificate (from the cache, or a new
// order) and returns the first domain's.
func (a *ACME) Obtain(ctx context.Context) (*x509.Certificate, error) {
	return a.obtain(ctx, a.m.Load())
}

func (a *ACME) obtain(ctx context.Context, m *autocert.Manager) (*x509.Certificate, error) {
	var first *x509.Certificate
	for _, d := range a.cfg.Domains {
		type res struct {
			c   *tls.Certificate
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := m.GetCertificate(ecdsaHello(d))
			ch <- res{c, err}
		}()
		var r res
		select {
		case r = <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("ACME certificate for %s: %w", d, ctx.Err())
		}
		if r.err != nil {
			return nil, fmt.Errorf("ACME certificate for %s from %s: %w", d, a.cfg.DirectoryURL, r.err)
		}
		if first == nil {
			first = r.c.Leaf
			if first == nil {
				var err error
				if first, err = x509.ParseCertificate(r.c.Certificate[0]); err != nil {
					return nil, err
				}
			}
		}
	}
	return first, nil
}

// ecdsaHello is a handshake of a modern client for name: autocert keeps
// an ECDSA certificate for such clients.
func ecdsaHello(name string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        name,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// Renew orders new certificates for every domain now, whatever the cached
// ones' expiry, and serves them once all are issued; until then (or if the
// order fails) the current certificates stay in use. autocert also renews
// on its own, 30 days before expiry.
func (a *ACME) Renew(ctx context.Context) (*x509.Certificate, error) {
	a.renew.Lock()
	defer a.renew.Unlock()
	m := a.newManager(&freshCache{Cache: autocert.DirCache(a.cfg.CacheDir), skip: map[string]bool{}})
	leaf, err := a.obtain(ctx, m)
	if err != nil {
		return nil, err
	}
	a.m.Store(m)
	return leaf, nil
}

// freshCache is a certificate cache that misses each certificate once
// until a new one is stored, so that a manager using it orders new
// certificates while keeping the cached account key.
type freshCache struct {
	autocert.Cache
	mu   sync.Mutex
	skip map[string]bool // certificates already replaced
}

func (c *freshCache) Get(ctx context.Context, key string) ([]byte, error) {
	if isCertKey(key) {
		c.mu.Lock()
		done := c.skip[key]
		c.mu.Unlock()
		if !done {
			return nil, autocert.ErrCacheMiss
		}
	}
	return c.Cache.Get(ctx, key)
}

func (c *freshCache) Put(ctx context.Context, key string, data []byte) error {
	if err := c.Cache.Put(ctx, key, data); err != nil {
		return err
	}
	if isCertKey(key) {
		c.mu.Lock()
		c.skip[key] = true
		c.mu.Unlock()
	}
	return nil
}

// isCertKey tells certificate entries of autocert's cache from its account
// key ("acme_account+key") and challenge tokens ("…+token", "…+http-01").
func isCertKey(key string) bool {
	return !strings.HasPrefix(key, "acme_account") && !strings.HasSuffix(key, "+token") && !strings.HasSuffix(key, "+http-01")
}

// LoadCertPool reads a PEM file of CA certificates.
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
