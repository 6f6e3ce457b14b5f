package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Source supplies a listener's certificate for each TLS handshake.
type Source interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// ServerConfig is the TLS configuration of a listener serving src: TLS 1.2
// or later; ALPN offers HTTP/2 and HTTP/1.1 (the wire proxy ignores ALPN).
// An *ACME source also gets acme-tls/1, its TLS-ALPN-01 challenge.
func ServerConfig(src Source) *tls.Config {
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: src.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if _, ok := src.(*ACME); ok {
		tc.NextProtos = append(tc.NextProtos, acmeALPNProto)
	}
	return tc
}

// acmeALPNProto is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
const acmeALPNProto = "acme-tls/1"

// Files is a certificate read from PEM files, replaced when they change.
// It is safe for concurrent use.
type Files struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[loaded]
}

type loaded struct {
	cert      *tls.Certificate
	certStamp stamp
	keyStamp  stamp
}

// stamp is what tells a changed file: modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// LoadFiles reads a PEM certificate chain and its private key. The error
// names the files and what is wrong with them.
func LoadFiles(certFile, keyFile string, log *slog.Logger) (*Files, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("give both --tls-cert and --tls-key (PEM files of the certificate chain and its private key)")
	}
	if log == nil {
		log = slog.Default()
	}
	f := &Files{certFile: certFile, keyFile: keyFile, log: log}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again. On failure the certificate in use stays.
func (f *Files) Reload() error {
	cs, err1 := stampOf(f.certFile)
	ks, err2 := stampOf(f.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s with key %s: %w (want a PEM certificate chain, leaf first, and the PEM private key that matches it)", f.certFile, f.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", f.certFile, err)
		}
	}
	f.cur.Store(&loaded{cert: &cert, certStamp: cs, keyStamp: ks})
	return nil
}

// GetCertificate returns the certificate last loaded.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cur.Load().cert, nil
}

// Leaf is the certificate last loaded, parsed.
func (f *Files) Leaf() *x509.Certificate { return f.cur.Load().cert.Leaf }

// changed reports whether either file differs from what was loaded.
func (f *Files) changed() bool {
	l := f.cur.Load()
	cs, err1 := stampOf(f.certFile)
	ks, err2 := stampOf(f.keyFile)
	if err1 != nil || err2 != nil {
		return false // a file being replaced: look again later
	}
	return !cs.mod.Equal(l.certStamp.mod) || cs.size != l.certStamp.size ||
		!ks.mod.Equal(l.keyStamp.mod) || ks.size != l.keyStamp.size
}

// Watch reloads the files every time they change on disk (checked every
// interval) until ctx ends. A certificate and key written one after the
// other may be seen half-replaced: the load then fails, is logged, and is
// tried again at the next change or check.
func (f *Files) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failedAt := stamp{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !f.changed() {
			continue
		}
		if err := f.Reload(); err != nil {
			// Log a failure once per state of the certificate file.
			if cs, _ := stampOf(f.certFile); cs != failedAt {
				f.log.Warn("TLS certificate files changed but cannot be loaded; still serving the previous certificate", "err", err)
				failedAt = cs
			}
			continue
		}
		failedAt = stamp{}
		l := f.Leaf()
		f.log.Info("TLS certificate reloaded", "file", f.certFile, "subject", l.Subject.String(), "not_after", l.NotAfter)
	}
}
