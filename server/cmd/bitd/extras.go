package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/connbudget"
	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// wireExtras wires the query, job and wire-proxy components and returns a
// function that stops them.
func wireExtras(ctx context.Context, cfg *config.Config, st *store.Store, srv *api.Server, resolver *api.Resolver,
	usage *api.Usage, hooks *lateHooks, log *slog.Logger) (func(), error) {
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	flushUsage, err := wireQuery(cfg, srv, resolver, usage, log)
	if err != nil {
		return nil, err
	}
	stops = append(stops, flushUsage)
	stopJobs, err := wireJobs(ctx, cfg, st, srv, resolver.Pools, resolver, log)
	if err != nil {
		return nil, err
	}
	stops = append(stops, stopJobs)
	if cfg.PGAddr != "" {
		backend, err := api.BackendAddr(cfg.DatabaseURL, cfg.PGBackend)
		if err != nil {
			stopAll()
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.PGAddr)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("listen on %s (--pg): %w", cfg.PGAddr, err)
		}
		pc := proxy.Config{DevTLS: true, AllowPlaintext: cfg.AllowPlaintextLoopback, IdleTimeout: cfg.PGIdleTimeout,
			MaxConns: cfg.PGMaxConns, MaxConnsPerDatabase: cfg.PGMaxConnsPerDB, ReaderIdleInTransaction: cfg.PGReaderIdleInTx}
		switch cfg.PGRelay {
		case "", "loop":
		case "goroutines":
			pc.GoroutineRelay = true
		default:
			ln.Close()
			stopAll()
			return nil, fmt.Errorf("--pg-relay %q: use loop or goroutines", cfg.PGRelay)
		}
		if cfg.PGTLSCert != "" || cfg.PGTLSKey != "" {
			cert, err := tls.LoadX509KeyPair(cfg.PGTLSCert, cfg.PGTLSKey)
			if err != nil {
				ln.Close()
				stopAll()
				return nil, fmt.Errorf("--pg-tls-cert/--pg-tls-key: %w", err)
			}
			pc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		} else if !cfg.Dev {
			log.Warn("the wire proxy uses a self-signed TLS certificate: pass --pg-tls-cert and --pg-tls-key")
		}
		wa := &api.WireAuthorizer{Store: st, Secret: cfg.Secret, BackendAddr: backend}
		if r, ok := resolver.Pools.(interface {
			RepairRole(ctx context.Context, pgDatabase, pgRole string) error
		}); ok {
			wa.Repair = r.RepairRole
		}
		if bp, ok := resolver.Pools.(interface{ Budget() *connbudget.Budget }); ok && bp.Budget() != nil {
			// Wire sessions take connection-budget slots like pool connections.
			b := bp.Budget()
			pc.Admit = func(ctx context.Context, t *proxy.WireTarget) (func(), error) { return b.Acquire(ctx, t.PGDatabase) }
		}
		px := proxy.New(pc, wa, log)
		go func() {
			if err := px.Serve(ln); err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				log.Error("wire proxy stopped", "err", err)
			}
		}()
		hooks.pgAddr = ln.Addr().String()
		hooks.onRevoke = append(hooks.onRevoke, px.TerminateCredential)
		hooks.onDelete = append(hooks.onDelete, px.TerminateDatabase)
		hooks.onAccess = append(hooks.onAccess, func(id string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := px.Recheck(ctx, id); err != nil {
				log.Warn("re-checking wire sessions after an access change failed; the periodic re-check follows", "database_id", id, "err", err)
			}
		})
		stops = append(stops, func() {
			// Wire queries in flight get 3 s; then their sessions are ended.
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_ = px.Shutdown(sctx)
		})
	}
	return stopAll, nil
}
