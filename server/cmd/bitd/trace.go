package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"go.opentelemetry.io/otel/trace"
)

// startTracing starts the OTLP trace exporter when cfg names an endpoint
// (cmdServe resolved it from --otlp-endpoint or the OTEL_ variables). It
// returns the tracer of bitd's root spans (nil: tracing is off, nothing
// is traced), the logger to use from then on (with tracing, log lines of a
// traced request carry its trace_id), and stop, which exports the spans
// still buffered, bounded by --drain-timeout (at least one second).
// endpoint is this bitd's own base URL: with --advertise-http it names
// the replica in service.instance.id.
func startTracing(ctx context.Context, cfg *config.Config, endpoint string, log *slog.Logger) (trace.Tracer, *slog.Logger, func(), error) {
	if cfg.OTLPEndpoint == "" {
		return nil, log, func() {}, nil
	}
	instance := strings.TrimSuffix(cfg.AdvertiseHTTP, "/")
	if instance == "" {
		instance = endpoint
	}
	tp, err := tracing.New(ctx, tracing.Config{Endpoint: cfg.OTLPEndpoint, SampleRatio: cfg.TraceSample,
		InstanceID: instance, Version: version, Logger: log})
	if err != nil {
		return nil, log, nil, err
	}
	log = slog.New(tracing.LogHandler(log.Handler()))
	slog.SetDefault(log)
	log.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", cfg.OTLPEndpoint, "sample", cfg.TraceSample,
		"service_instance_id", instance, "sql_text", cfg.TraceSQL)
	stop := func() {
		d := max(cfg.DrainTimeout, time.Second)
		sctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans not exported before shutdown were dropped", "err", err.Error())
		}
	}
	return tp.Tracer(), log, stop, nil
}
