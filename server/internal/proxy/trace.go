package proxy

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// sessionTrace is the span of one wire-proxy connection (Config.Tracer
// set): a root span "pg.session" from the start-up message to the end of
// the relay, with an event per phase (authorized, backend connected,
// relaying). The access layer's lookups during authorization are its
// children. It records the database's name and the client's address,
// never the password, the start-up parameters or any SQL.
type sessionTrace struct {
	span  trace.Span
	phase string // the phase the connection is in, for a connection that ends early
}

// startSession starts the session span; nil when tracing is off.
func (s *Server) startSession(h *handshake) (*sessionTrace, context.Context) {
	if s.cfg.Tracer == nil {
		return nil, context.Background()
	}
	ctx, sp := s.cfg.Tracer.Start(context.Background(), "pg.session", trace.WithSpanKind(trace.SpanKindServer))
	sp.SetAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.system.name", "postgresql"),
		attribute.String("db.namespace", h.dbName), attribute.String("client.address", h.remote))
	return &sessionTrace{span: sp, phase: "authorize"}, ctx
}

// event records that a phase is done and the next one began.
func (t *sessionTrace) event(done, next string, attrs ...attribute.KeyValue) {
	if t == nil {
		return
	}
	t.span.AddEvent(done, trace.WithAttributes(attrs...))
	t.phase = next
}

// end ends the span; a connection that never reached the relay is marked
// failed with the phase it stopped in.
func (t *sessionTrace) end() {
	if t == nil {
		return
	}
	if t.phase != "relay" {
		t.span.SetStatus(codes.Error, "the connection ended during "+t.phase)
	}
	t.span.SetAttributes(attribute.String("bitkit.session.phase", t.phase))
	t.span.End()
}
