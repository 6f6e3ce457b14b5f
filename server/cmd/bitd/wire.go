package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// wireProxy is the PostgreSQL wire proxy of --pg. A nil *wireProxy (no
// --pg) does nothing, so callers need no checks.
type wireProxy struct {
	px  *proxy.Server
	ln  net.Listener
	log *slog.Logger
	// recheckAll asks the recheck loop for one re-check of every session;
	// done ends the loop.
	recheckAll chan struct{}
	done       chan struct{}
}

// newWire listens on --pg and serves the wire proxy until stop; nil when
// --pg is empty.
func newWire(cfg *config.Config, acc *access.Access, pools *pgpool.Manager, log *slog.Logger) (*wireProxy, error) {
	if cfg.PGAddr == "" {
		return nil, nil
	}
	backend, err := access.BackendAddr(cfg.DatabaseURL, cfg.PGBackend)
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{DevTLS: true, AllowPlaintext: cfg.AllowPlaintextLoopback, IdleTimeout: cfg.PGIdleTimeout,
		MaxConns: cfg.PGMaxConns, MaxConnsPerDatabase: cfg.PGMaxConnsPerDB, ReaderIdleInTransaction: cfg.PGReaderIdleInTx}
	switch cfg.PGRelay {
	case "", "loop":
	case "goroutines":
		pc.GoroutineRelay = true
	default:
		return nil, fmt.Errorf("--pg-relay %q: use loop or goroutines", cfg.PGRelay)
	}
	if cfg.PGTLSCert != "" || cfg.PGTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.PGTLSCert, cfg.PGTLSKey)
		if err != nil {
			return nil, fmt.Errorf("--pg-tls-cert/--pg-tls-key: %w", err)
		}
		pc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if !cfg.Dev {
		log.Warn("the wire proxy uses a self-signed TLS certificate: pass --pg-tls-cert and --pg-tls-key")
	}
	wa := &access.WireAuthorizer{Access: acc, Secret: cfg.Secret, BackendAddr: backend, Repair: pools.RepairRole}
	if b := pools.Budget(); b != nil {
		// Wire sessions take connection-budget slots like pool connections.
		pc.Admit = func(ctx context.Context, t *proxy.WireTarget) (func(), error) {
			if t.Reader {
				return b.AcquireReader(ctx, t.PGDatabase)
			}
			return b.Acquire(ctx, t.PGDatabase)
		}
	}
	ln, err := net.Listen("tcp", cfg.PGAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (--pg): %w", cfg.PGAddr, err)
	}
	w := &wireProxy{px: proxy.New(pc, wa, log), ln: ln, log: log, recheckAll: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		if err := w.px.Serve(ln); err != nil && !errors.Is(err, proxy.ErrServerClosed) {
			log.Error("wire proxy stopped", "err", err)
		}
	}()
	go w.recheckLoop()
	// Changes announced by any replica reach this proxy's sessions within
	// the notification delay, not only at its periodic re-check.
	acc.OnNotify(w.onNotify)
	return w, nil
}

// onNotify ends the sessions of revoked credentials at once and has every
// other session re-checked after any other access change.
func (w *wireProxy) onNotify(tags []string) {
	all := false
	for _, t := range tags {
		if id, ok := strings.CutPrefix(t, store.CredTag("")); ok {
			w.px.TerminateCredential(id)
			continue
		}
		all = true
	}
	if all {
		select {
		case w.recheckAll <- struct{}{}:
		default: // a re-check is already due
		}
	}
}

// recheckLoop re-checks every session once per request on w.recheckAll.
func (w *wireProxy) recheckLoop() {
	for {
		select {
		case <-w.done:
			return
		case <-w.recheckAll:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := w.px.RecheckAll(ctx); err != nil {
			w.log.Warn("re-checking wire sessions after an access change failed; the periodic re-check follows", "err", err)
		}
		cancel()
	}
}

// addr is the proxy's host:port ("" without --pg).
func (w *wireProxy) addr() string {
	if w == nil {
		return ""
	}
	return w.ln.Addr().String()
}

// terminateCredential ends the sessions opened with a revoked credential.
func (w *wireProxy) terminateCredential(id string) {
	if w != nil {
		w.px.TerminateCredential(id)
	}
}

// terminateDatabase ends the sessions on a database being deleted.
func (w *wireProxy) terminateDatabase(id string) {
	if w != nil {
		w.px.TerminateDatabase(id)
	}
}

// recheck re-checks the sessions on a database whose access changed.
func (w *wireProxy) recheck(id string) {
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.px.Recheck(ctx, id); err != nil {
		w.log.Warn("re-checking wire sessions after an access change failed; the periodic re-check follows", "database_id", id, "err", err)
	}
}

// stop shuts the proxy down: wire queries in flight get 3 s, then their
// sessions are ended.
func (w *wireProxy) stop() {
	if w == nil {
		return
	}
	close(w.done)
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = w.px.Shutdown(sctx)
}
