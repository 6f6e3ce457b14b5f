package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/blob"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/jobs"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/quota"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"go.opentelemetry.io/otel/trace"
)

// newJobs migrates the job tables, opens the blob store and starts the
// job workers. The returned drain stops the workers: they pick no new job,
// running jobs get --drain-timeout to finish, then are cancelled and handed
// back to the queue (another bitd, or this one after a restart, runs them
// again; an import never loads twice). It may be called more than once.
// closeJobs drains, then closes the blob store (after the HTTP server
// stopped: uploads and downloads use it).
func newJobs(ctx context.Context, cfg *config.Config, st *store.Store, pools jobs.PoolSource,
	resolver *access.Access, met *metrics.Metrics, tracer trace.Tracer, log *slog.Logger) (svc *jobs.Service, drain, closeJobs func(), err error) {
	if err := jobs.Migrate(ctx, st.DB); err != nil {
		return nil, nil, nil, err
	}
	bucket, err := blob.Open(ctx, cfg.BlobURL, cfg.DataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	jc := jobs.Config{PublicURL: cfg.PublicURL, Secret: cfg.Secret, AllowPrivateURLs: cfg.AllowPrivateFileURLs,
		DownloadURLTTL: cfg.DownloadURLTTL, ExportRetention: cfg.ExportRetention,
		StatementTimeout: cfg.JobStatementTimeout, Workers: cfg.JobWorkers, MaxRunningPerAccount: cfg.JobMaxPerAccount,
		Credentials: st, Metrics: met, Tracer: tracer}
	// Storage quotas: an import that would not fit fails before loading;
	// one that committed is measured at once.
	jc.CheckStorage = func(ctx context.Context, databaseID string, incoming int64) error {
		return quota.CheckImport(ctx, st, databaseID, incoming)
	}
	jc.AfterWrite = func(ctx context.Context, databaseID string) {
		if _, err := (&quota.Enforcer{Store: st, Log: log}).Check(ctx, databaseID); err != nil {
			log.Warn("storage quota check after an import failed; the next pass tries again", "err", err)
		}
	}
	jc.RescueAfter = cfg.JobRescueAfter
	if jc.RescueAfter == 0 && cfg.Dev {
		jc.RescueAfter = time.Minute
	}
	svc, err = jobs.New(ctx, jc, st.DB, pools, resolver, bucket, log)
	if err != nil {
		bucket.Close()
		return nil, nil, nil, err
	}
	drain = sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		defer cancel()
		if err := svc.Stop(sctx); err != nil {
			log.Warn("job workers: running jobs did not finish within --drain-timeout; they were handed back to the queue", "err", err)
		}
	})
	return svc, drain, func() {
		drain()
		_ = bucket.Close()
	}, nil
}

// routeJobs registers the job routes on srv, with the options each route
// declares.
func routeJobs(cfg *config.Config, srv *api.Server, svc *jobs.Service) {
	for _, rt := range svc.Routes() {
		if rt.SlashOf != "" {
			continue // api.Server.Handle registers the trailing-slash form itself
		}
		var opts []api.RouteOption
		if rt.Public {
			opts = append(opts, api.Public)
		}
		h := rt.Handler
		if rt.Upload {
			opts = append(opts, api.NoBodyLimit) // multipart uploads; jobs caps them
			// An upload may take long while it keeps arriving; silence
			// for --http-read-timeout ends it.
			h = api.StallDeadline(cfg.HTTPReadTimeout, h)
		}
		srv.Handle(rt.Pattern, h, opts...)
	}
}
