package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
)

// drainer is bitd's answer to SIGTERM, so that a rolling restart loses
// nothing:
//
//  1. /readyz answers 503 "draining" at once; for --drain-delay bitd still
//     serves everything, so load balancers see it and move away.
//  2. Then, all together: the HTTP server takes no new connection and its
//     in-flight requests and streams get --drain-timeout to finish; the wire
//     proxy takes no new session, ends idle sessions at once and busy ones
//     when their query ends; the job workers pick no new job and running
//     jobs get --drain-timeout to finish.
//  3. Past --drain-timeout, requests still running are cancelled with
//     apierr.ErrShuttingDown (a stream's last line says shutting_down, so a
//     client never takes a cut stream for a whole one), wire sessions are
//     ended with FATAL 57P01 and running jobs are handed back to the queue,
//     where another replica picks them up.
type drainer struct {
	on  atomic.Bool
	met *metrics.Metrics
}

// errDraining is /readyz's reason while bitd drains.
var errDraining = errors.New("bitd is draining (it received SIGTERM): it finishes the requests, streams, sessions and jobs it has and takes no new ones; send new requests to another replica")

// ready is api.Options.Ready.
func (d *drainer) ready() error {
	if d.on.Load() {
		return errDraining
	}
	return nil
}

// drain runs the steps above; it returns when the HTTP server, the wire
// proxy and the job workers have stopped.
func (d *drainer) drain(delay, timeout time.Duration, hs *http.Server, cancelRequests context.CancelCauseFunc,
	wire *wireProxy, drainJobs func(), log *slog.Logger) {
	d.on.Store(true)
	d.met.SetDraining(true)
	start := time.Now()
	log.Info("draining: /readyz answers 503", "drain_delay", delay, "drain_timeout", timeout)
	if delay > 0 {
		time.Sleep(delay)
	}
	var wg sync.WaitGroup
	wg.Go(drainJobs)
	wg.Go(func() { wire.stopWithin(timeout) })
	shutdownHTTP(hs, cancelRequests, timeout, log)
	wg.Wait()
	log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
}

// shutdownCancelWait is how long requests cancelled at the drain timeout
// get to write their last words (a stream's error line) before their
// connections are closed.
const shutdownCancelWait = 2 * time.Second

// shutdownHTTP stops hs within grace+shutdownCancelWait, however long its
// in-flight requests would otherwise run: they get grace to finish on their
// own; then their contexts are cancelled (cause apierr.ErrShuttingDown:
// queries abort, streams end with a shutting_down line).
func shutdownHTTP(hs *http.Server, cancelRequests context.CancelCauseFunc, grace time.Duration, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	err := hs.Shutdown(sctx)
	cancel()
	if err == nil {
		return
	}
	log.Info("cancelling in-flight HTTP requests to shut down", "drain_timeout", grace)
	cancelRequests(apierr.ErrShuttingDown)
	sctx, cancel = context.WithTimeout(context.Background(), shutdownCancelWait)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown did not finish in time; closing connections", "err", err)
		_ = hs.Close()
	}
}

// startMetrics serves met at /metrics on addr ("" does nothing) on a
// listener of its own, never on the API's. config.Validate has checked that
// addr is loopback (or that the operator said otherwise). It returns the
// address bound and a function that stops the listener.
func startMetrics(addr string, met *metrics.Metrics, log *slog.Logger) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", met.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics listener stopped", "err", err)
		}
	}()
	log.Info("serving Prometheus metrics", "metrics", "http://"+ln.Addr().String()+"/metrics")
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}
