package query

import (
	"context"

	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// acquire is t.Pool.Acquire inside a "pool.acquire" span when the request
// is traced.
func acquire(ctx context.Context, t *dbaccess.Target) (*pgxpool.Conn, error) {
	actx, sp := tracing.Start(ctx, "pool.acquire")
	conn, err := t.Pool.Acquire(actx)
	tracing.End(sp, err)
	return conn, err
}

// traceQuery starts the "db.query" span of one SQL string run on t when
// the request is traced, and returns the sink that counts its rows for
// the span; done ends it. Untraced, it returns ctx and s, and done is nil.
// The span holds the database's platform name and id, and the SQL text
// only with Config.TraceSQL; never the parameters.
func (h *Handler) traceQuery(ctx context.Context, t *dbaccess.Target, sql string, nparams int, s sink) (context.Context, sink, func(error)) {
	ctx, sp := tracing.Start(ctx, "db.query")
	if sp == nil {
		return ctx, s, nil
	}
	sp.SetAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.system.name", "postgresql"),
		attribute.String("db.namespace", t.FullName), attribute.String("bitkit.database_id", t.DatabaseID),
		attribute.String("bitkit.permission", string(t.Permission)), attribute.Int("bitkit.params", nparams))
	if h.cfg.TraceSQL {
		sp.SetAttributes(attribute.String("db.query.text", sql))
	}
	c := &countingSink{sink: s}
	return ctx, c, func(err error) { endQuery(sp, c, err) }
}

func endQuery(sp trace.Span, c *countingSink, err error) {
	sp.SetAttributes(attribute.Int64("db.response.returned_rows", c.rows), attribute.Int("bitkit.statements", c.statements))
	if tracing.IsCanceled(err) {
		err = nil // the client left: not a failure of the query
	}
	tracing.End(sp, err)
}

// countingSink counts the rows and statements passing to a sink (traced
// queries only).
type countingSink struct {
	sink
	rows       int64
	statements int
}

func (c *countingSink) row(values [][]byte) error {
	c.rows++
	return c.sink.row(values)
}

func (c *countingSink) end(tag pgconn.CommandTag) error {
	c.statements++
	return c.sink.end(tag)
}
