package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/access/wireauth"
	"github.com/bitkit-dev/bitkit/server/internal/clientaddr"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"go.opentelemetry.io/otel/trace"
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
	stopOnce   sync.Once
	// relay hands cancel requests to the other replicas (wirecancel.go).
	relay *cancelRelay
}

// newWire listens on --pg and serves the wire proxy until stop; nil when
// --pg is empty. ptls is its TLS configuration (wireTLS); nil means a
// self-signed certificate.
func newWire(cfg *config.Config, acc *access.Access, pools *pgpool.Manager, ptls *tls.Config, tracer trace.Tracer, log *slog.Logger) (*wireProxy, error) {
	if cfg.PGAddr == "" {
		return nil, nil
	}
	backend, err := wireauth.BackendAddr(cfg.DatabaseURL, cfg.PGBackend)
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{DevTLS: true, AllowPlaintext: cfg.AllowPlaintextLoopback, IdleTimeout: cfg.PGIdleTimeout,
		MaxConns: cfg.PGMaxConns, MaxConnsPerDatabase: cfg.PGMaxConnsPerDB, ReaderIdleInTransaction: cfg.PGReaderIdleInTx,
		Tracer: tracer}
	switch cfg.PGRelay {
	case "", "loop":
	case "goroutines":
		pc.GoroutineRelay = true
	default:
		return nil, fmt.Errorf("--pg-relay %q: use loop or goroutines", cfg.PGRelay)
	}
	// The certificate: --pg-tls-cert/--pg-tls-key, else the HTTP API's.
	pc.TLS = ptls
	if ptls == nil && !cfg.Dev {
		log.Warn("the wire proxy uses a self-signed TLS certificate that no client can verify: pass --tls-cert and --tls-key (or --acme-domain), or --pg-tls-cert and --pg-tls-key")
	}
	wa := &wireauth.Authorizer{Access: acc, Secret: cfg.Secret, BackendAddr: backend, Repair: pools.RepairRole,
		ClusterAddr: pools.TenantAddrOf}
	if b := pools.Budget(); b != nil {
		// Wire sessions take connection-budget slots like pool connections.
		pc.Admit = func(ctx context.Context, t *proxy.WireTarget) (func(), error) {
			if t.Reader {
				return b.AcquireReader(ctx, t.PGDatabase)
			}
			return b.Acquire(ctx, t.PGDatabase)
		}
	}
	if cfg.WireProxyProtocol {
		// Behind a TCP balancer: its PROXY header names the client (for
		// logs and the loopback check). Required from the balancer's
		// addresses, never guessed: a peer that may send either could pass
		// off a client's bytes as a header.
		trusted, err := clientaddr.ParseTrusted(cfg.TrustedProxies)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %w", err)
		}
		pc.ClientAddr = trusted.Conn
	}
	// A cancel request that lands on another replica still cancels.
	relay := &cancelRelay{st: acc.Store()}
	pc.CancelRelay, pc.CancelKey = relay, proxy.DeriveCancelKey(cfg.Secret)
	ln, err := net.Listen("tcp", cfg.PGAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (--pg): %w", cfg.PGAddr, err)
	}
	// Failed passwords count against the client's address (wirelimit.go).
	la := &limitedAuth{Authorizer: wa, st: acc.Store(), log: log}
	w := &wireProxy{px: proxy.New(pc, la, log), ln: ln, log: log, recheckAll: make(chan struct{}, 1), done: make(chan struct{}), relay: relay}
	relay.start(w.px)
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

// stop shuts the proxy down: see stopWithin; 3 s when it was not drained.
func (w *wireProxy) stop() { w.stopWithin(3 * time.Second) }

// stopWithin shuts the proxy down once: it takes no new connection, idle
// sessions end at once and sessions running a query when it finishes
// (FATAL 57P01 admin_shutdown); sessions still busy after d are ended the
// same way. Later calls do nothing.
func (w *wireProxy) stopWithin(d time.Duration) {
	if w == nil {
		return
	}
	w.stopOnce.Do(func() {
		close(w.done)
		sctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := w.px.Shutdown(sctx); err != nil {
			w.log.Info("wire proxy: sessions still busy after the drain timeout were ended (57P01)")
		}
		w.relay.stop()
	})
}

// stats reads the proxy's counters (metrics); zero without --pg.
func (w *wireProxy) stats() metrics.WireStats {
	if w == nil {
		return metrics.WireStats{}
	}
	s := w.px.Stats()
	return metrics.WireStats{Sessions: s.Sessions, SessionsTotal: s.SessionsTotal, BytesToBackend: s.BytesToBackend, BytesToClient: s.BytesToClient,
		CancelsRelayed: s.CancelsRelayed, CancelsRelayedIn: s.CancelsRelayedIn}
}
