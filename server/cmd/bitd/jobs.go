package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/blob"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/jobs"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// jobsStopWait bounds how long shutdown waits for running jobs before
// cancelling them.
const jobsStopWait = 3 * time.Second

// newJobs migrates the job tables, opens the blob store and starts the
// job workers. The returned function stops the workers and closes the
// blob store.
func newJobs(ctx context.Context, cfg *config.Config, st *store.Store, pools jobs.PoolSource,
	resolver *access.Access, log *slog.Logger) (*jobs.Service, func(), error) {
	if err := jobs.Migrate(ctx, st.DB); err != nil {
		return nil, nil, err
	}
	bucket, err := blob.Open(ctx, cfg.BlobURL, cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	jc := jobs.Config{PublicURL: cfg.PublicURL, Secret: cfg.Secret, AllowPrivateURLs: cfg.AllowPrivateFileURLs,
		DownloadURLTTL: cfg.DownloadURLTTL, ExportRetention: cfg.ExportRetention,
		StatementTimeout: cfg.JobStatementTimeout, Workers: cfg.JobWorkers, MaxRunningPerAccount: cfg.JobMaxPerAccount,
		Credentials: st}
	if cfg.Dev {
		jc.RescueAfter = time.Minute
	}
	svc, err := jobs.New(ctx, jc, st.DB, pools, resolver, bucket, log)
	if err != nil {
		bucket.Close()
		return nil, nil, err
	}
	return svc, func() {
		// Running jobs get jobsStopWait to finish; then river cancels them
		// (a cancelled job runs again, from the start, after a restart).
		sctx, cancel := context.WithTimeout(context.Background(), jobsStopWait)
		defer cancel()
		if err := svc.Stop(sctx); err != nil {
			log.Warn("stopping job workers", "err", err)
		}
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
