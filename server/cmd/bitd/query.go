package main

import (
	"context"
	"log/slog"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/query"
	"github.com/bitkit-dev/bitkit/server/internal/quota"
)

// wireQuery registers POST /v2beta/query and POST /v2beta/query/batch. The
// returned function, run after the HTTP server stopped, flushes pending
// usage counts.
func wireQuery(cfg *config.Config, srv *api.Server, resolver *access.Access, usage query.UsageRecorder, tx query.TxSource, quotas *quota.Enforcer, log *slog.Logger) func() {
	qh := query.New(query.Config{
		StatementTimeout:    cfg.StatementTimeout,
		MaxStatementTimeout: cfg.MaxStatementTimeout,
		MaxRows:             cfg.MaxResultRows,
		MaxBytes:            cfg.MaxResultBytes,
		StreamStallTimeout:  cfg.StreamStallTimeout,

		MaxBufferedBytes:           cfg.MaxBufferedBytes,
		MaxBufferedBytesPerAccount: cfg.MaxBufferedBytesPerAccount,
		Tx:                         tx,
		Logger:                     log,
		TraceSQL:                   cfg.TraceSQL,
		ExplainError: func(ctx context.Context, t *dbaccess.Target, err error) error {
			return quota.Explain(ctx, resolver.Store(), t.DatabaseID, err)
		},
		AfterWrite: func(t *dbaccess.Target) { quotas.Nudge(t.DatabaseID) },
	}, resolver, usage)
	// The query handler limits its own request body (query.MaxRequestBytes).
	srv.Handle("POST /v2beta/query", apierr.HandlerFunc(qh.ServeQuery), api.NoBodyLimit)
	srv.Handle("POST /v2beta/query/batch", apierr.HandlerFunc(qh.ServeBatch), api.NoBodyLimit)
	return qh.FlushUsage
}
