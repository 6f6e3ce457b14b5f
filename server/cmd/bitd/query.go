package main

import (
	"log/slog"
	"net/http"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/query"
)

// wireQuery registers POST /v2beta/query and POST /v2beta/query/batch. The
// returned function, run after the HTTP server stopped, flushes pending
// usage counts.
func wireQuery(cfg *config.Config, srv *api.Server, resolver *access.Access, usage *access.Usage, log *slog.Logger) func() {
	qh := query.New(query.Config{
		StatementTimeout:    cfg.StatementTimeout,
		MaxStatementTimeout: cfg.MaxStatementTimeout,
		MaxRows:             cfg.MaxResultRows,
		MaxBytes:            cfg.MaxResultBytes,
		StreamStallTimeout:  cfg.StreamStallTimeout,

		MaxBufferedBytes:           cfg.MaxBufferedBytes,
		MaxBufferedBytesPerAccount: cfg.MaxBufferedBytesPerAccount,
		Logger:                     log,
	}, resolver, usage)
	// The query handler limits its own request body (query.MaxRequestBytes).
	srv.Handle("POST /v2beta/query", http.HandlerFunc(qh.ServeQuery), api.NoBodyLimit)
	srv.Handle("POST /v2beta/query/batch", http.HandlerFunc(qh.ServeBatch), api.NoBodyLimit)
	return qh.FlushUsage
}
