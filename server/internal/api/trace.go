package api

import (
	"net/http"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts the server span of a request (Options.Tracer is set),
// continuing the trace of the client's traceparent/tracestate headers, and
// returns the request with the span in its context. The span is named by
// the method until the route that serves the request is known (endSpan).
// It records the method, the request ID and nothing else of the request:
// no header, body, query string or credential.
func (s *Server) startSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.o.Tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", r.Method),
			attribute.String("bitkit.request_id", apierr.RequestID(r.Context())))
	}
	return r.WithContext(ctx), span
}

// endSpan names the span after the route pattern that served the request
// ("POST /v2beta/query"), records the status and the bitkit error code,
// marks 5xx answers as errors, and ends it.
func endSpan(span trace.Span, sw *statusWriter, status int) {
	if span.IsRecording() {
		if route := sw.route; route != "" && route != routeUnmatched && route != routeFallback {
			route = tracing.TrimRoute(route)
			span.SetName(route)
			if _, p, ok := strings.Cut(route, " "); ok {
				span.SetAttributes(attribute.String("http.route", p))
			}
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if sw.code != "" {
			span.SetAttributes(tracing.ErrorCode(sw.code))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, sw.code)
		}
	}
	span.End()
}
