package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/tlsconf"
)

// tlsWatchInterval is how often certificate files are checked for changes.
const tlsWatchInterval = 2 * time.Second

// httpsSource returns where the HTTP API's certificate comes from
// (--tls-cert/--tls-key, --acme-domain, or the dev CA of `bitd dev --tls`),
// nil for plain HTTP. It keeps the certificate current until ctx ends:
// certificate files are reloaded when they change and on SIGHUP; under ACME,
// SIGHUP orders a new certificate. Under `bitd dev --tls` it sets
// d.caCert to the dev CA's certificate file.
func httpsSource(ctx context.Context, cfg *config.Config, d *devOptions, log *slog.Logger) (tlsconf.Source, error) {
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if d.tls && certFile == "" && cfg.ACMEDomains == "" {
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("bitd dev --tls keeps its CA in the data directory: give --data DIR")
		}
		ca, err := tlsconf.EnsureDevCA(filepath.Join(cfg.DataDir, "tls"))
		if err != nil {
			return nil, err
		}
		certFile, keyFile, d.caCert = ca.Cert, ca.Key, ca.CACert
		log.Info("serving HTTPS and wire TLS with the development CA's certificate", "ca_cert", ca.CACert, "names", strings.Join(tlsconf.DevNames, ","))
	}
	switch {
	case certFile != "":
		f, err := tlsconf.LoadFiles(certFile, keyFile, log)
		if err != nil {
			return nil, err
		}
		go f.Watch(ctx, tlsWatchInterval)
		onSIGHUP(ctx, func() {
			if err := f.Reload(); err != nil {
				log.Error("SIGHUP: TLS certificate not reloaded; still serving the previous one", "err", err)
				return
			}
			log.Info("SIGHUP: TLS certificate reloaded", "file", certFile, "not_after", f.Leaf().NotAfter)
		})
		return f, nil
	case cfg.ACMEDomains != "":
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("--acme-domain keeps the ACME account key and certificates in the data directory: give --data DIR")
		}
		a, err := tlsconf.NewACME(tlsconf.ACMEConfig{
			Domains: strings.Split(cfg.ACMEDomains, ","), Email: cfg.ACMEEmail,
			DirectoryURL: cfg.ACMEDirectory, CACertFile: cfg.ACMECACert,
			CacheDir: filepath.Join(cfg.DataDir, "acme"), Logger: log,
		})
		if err != nil {
			return nil, err
		}
		onSIGHUP(ctx, func() {
			log.Info("SIGHUP: renewing the ACME certificate")
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			leaf, err := a.Renew(rctx)
			cancel()
			if err != nil {
				log.Error("ACME renewal failed; still serving the previous certificate", "err", err)
				return
			}
			log.Info("ACME certificate renewed", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
		})
		return a, nil
	}
	return nil, nil
}

// onSIGHUP calls f, on a goroutine of its own, at every SIGHUP until ctx
// ends.
func onSIGHUP(ctx context.Context, f func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				f()
			}
		}
	}()
}

// obtainACME gets the ACME certificate once the HTTPS listener serves (it
// answers the TLS-ALPN-01 challenge), so that the first client need not
// wait for the order. Failures are logged; handshakes try again.
func obtainACME(ctx context.Context, src tlsconf.Source, log *slog.Logger) {
	a, ok := src.(*tlsconf.ACME)
	if !ok {
		return
	}
	go func() {
		octx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		leaf, err := a.Obtain(octx)
		if err != nil {
			log.Error("ACME: no certificate yet; handshakes will try again", "err", err)
			return
		}
		log.Info("ACME certificate ready", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "issuer", leaf.Issuer.String())
	}()
}

// wireTLS is the wire proxy's TLS configuration: --pg-tls-cert/--pg-tls-key
// (also reloaded when they change), else the HTTP API's certificate source,
// else nil (the proxy's self-signed certificate).
func wireTLS(ctx context.Context, cfg *config.Config, src tlsconf.Source, log *slog.Logger) (*tls.Config, error) {
	if cfg.PGTLSCert != "" || cfg.PGTLSKey != "" {
		f, err := tlsconf.LoadFiles(cfg.PGTLSCert, cfg.PGTLSKey, log)
		if err != nil {
			return nil, fmt.Errorf("--pg-tls-cert/--pg-tls-key: %w", err)
		}
		go f.Watch(ctx, tlsWatchInterval)
		src = f
	}
	if src == nil {
		return nil, nil
	}
	tc := tlsconf.ServerConfig(src)
	tc.NextProtos = nil // PostgreSQL uses no ALPN
	return tc, nil
}
