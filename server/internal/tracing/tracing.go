// Package tracing is bitd's OpenTelemetry tracing: the tracer provider
// that exports spans over OTLP/HTTP (New), the child spans the layers
// below the HTTP API open (Start, End), the W3C trace context carried into
// jobs (Inject, Link) and a log handler that adds trace_id to log lines of
// a traced request (LogHandler).
//
// Tracing is off unless an OTLP endpoint is configured. Off, New returns a
// nil *Provider, whose Tracer is nil: the HTTP API and the wire proxy then
// start no span, and Start finds no recording span in the context and
// returns at once (one context lookup, no allocation), so the request path
// costs what it costs without tracing.
//
// A child span is only started under a recording parent (Start looks at
// the span in the context): a request that was sampled out, or that came
// in while tracing is off, has no span below it either.
//
// What spans never carry: credentials (API keys, tokens, passwords),
// request or answer bodies, SQL parameters; the SQL text only when
// --trace-sql is set. See docs/bitd.md, "Traces".
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope name of bitd's spans.
const Scope = "github.com/bitkit-dev/bitkit/server"

// Config configures New.
type Config struct {
	// Endpoint is the OTLP/HTTP receiver: a base URL
	// ("http://collector:4318", to which /v1/traces is added) or the
	// full traces URL (a path of its own is used as is). Empty means
	// tracing is off.
	Endpoint string
	// SampleRatio is the share of new traces recorded (0..1); a request
	// that continues a client's trace follows the client's sampling
	// decision (parent-based sampling). 0 records no new trace.
	SampleRatio float64
	// InstanceID is service.instance.id: what tells this replica's
	// spans from the others' (bitd uses its advertised address).
	InstanceID string
	// Version is service.version.
	Version string
	// Logger receives exporter errors, at most one line a minute; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Provider owns the tracer provider and its exporter. A nil *Provider is
// tracing off: its methods do nothing and Tracer returns nil.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// ResolveEndpoint returns the OTLP traces URL from bitd's --otlp-endpoint
// (flag or BITD_OTLP_ENDPOINT), else the standard environment variables
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL) and
// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL), with getenv reading the
// environment. "" means tracing is off. A URL that is not http(s), has no
// host or carries a user name or password is an error: credentials for
// the receiver go in OTEL_EXPORTER_OTLP_HEADERS, which never reach a log.
func ResolveEndpoint(flag string, getenv func(string) string) (string, error) {
	raw, base, from := flag, true, "--otlp-endpoint"
	if raw == "" {
		if raw = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); raw != "" {
			base, from = false, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
		} else if raw = getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); raw != "" {
			from = "OTEL_EXPORTER_OTLP_ENDPOINT"
		}
	}
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s must be an http:// or https:// URL of an OTLP/HTTP receiver, like http://127.0.0.1:4318", from)
	}
	if u.User != nil {
		return "", fmt.Errorf("%s must not hold a user name or password: put the receiver's credentials in OTEL_EXPORTER_OTLP_HEADERS (e.g. Authorization=Bearer%%20...)", from)
	}
	if base && (u.Path == "" || u.Path == "/") {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// New starts the exporter and the tracer provider, or returns nil (and no
// error) when cfg.Endpoint is empty. The exporter sends batches in the
// background; Shutdown flushes them.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("--trace-sample must be between 0 and 1, not %g", cfg.SampleRatio)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	otel.SetErrorHandler(&errorLog{log: cfg.Logger, every: time.Minute})
	attrs := []attribute.KeyValue{attribute.String("service.name", "bitd")}
	if cfg.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.InstanceID))
	}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(Sampler(cfg.SampleRatio)),
	)
	return &Provider{tp: tp, tracer: tp.Tracer(Scope)}, nil
}

// Sampler is bitd's sampler: a span with a parent follows the parent's
// decision (a client's sampled traceparent is always recorded, whatever the
// ratio); a new root span linked to a sampled span (a job run, linked to
// the request that created it) is recorded too; any other new root is
// recorded for ratio of trace ids.
func Sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(linkedOr{sdktrace.TraceIDRatioBased(ratio)})
}

// linkedOr samples a root span that links to a sampled span, else asks
// its Sampler.
type linkedOr struct{ sdktrace.Sampler }

func (l linkedOr) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	for _, link := range p.Links {
		if link.SpanContext.IsSampled() {
			return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample,
				Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
		}
	}
	return l.Sampler.ShouldSample(p)
}

func (l linkedOr) Description() string { return "LinkedOr{" + l.Sampler.Description() + "}" }

// Tracer is the tracer of bitd's root spans (HTTP requests, wire
// sessions, jobs); nil when p is nil (tracing off).
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// Shutdown exports the spans still buffered and stops the exporter,
// giving up when ctx ends. It does nothing on a nil Provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// errorLog is the OpenTelemetry error handler: exporter errors (a
// receiver that is down or refuses spans) are logged, at most one line per
// every, with the number suppressed since. They are never fatal.
type errorLog struct {
	log        *slog.Logger
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Handle logs err unless a line was logged less than every ago.
func (e *errorLog) Handle(err error) {
	e.mu.Lock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	e.log.Warn("tracing: exporting spans failed; spans are being dropped until the OTLP receiver (--otlp-endpoint) answers",
		"err", err.Error(), "errors_suppressed", n)
}

// Propagator reads and writes W3C traceparent and tracestate.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Start starts a child span named name under the recording span in ctx.
// Without one (tracing off, or the trace was sampled out) it returns ctx
// and a nil span, at the cost of a context lookup: callers check for nil.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name)
}

// Recording reports whether ctx holds a recording span.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// End ends sp (nil: does nothing), marking it failed when err is not nil.
// The error's text is recorded as the status description: callers pass
// errors that hold no secret (bitd's errors never do).
func End(sp trace.Span, err error) {
	if sp == nil {
		return
	}
	if err != nil {
		sp.SetStatus(codes.Error, errText(err))
	}
	sp.End()
}

// errText is err's message, cut to 200 bytes.
func errText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Inject returns the W3C traceparent of the recording span in ctx, or ""
// when there is none: what a job carries in its arguments so that its
// run links to the request that created it.
func Inject(ctx context.Context) string {
	if !Recording(ctx) {
		return ""
	}
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c["traceparent"]
}

// Link returns the span link to the span a traceparent names, and false
// when traceparent is empty or malformed.
func Link(traceparent string) (trace.Link, bool) {
	if traceparent == "" {
		return trace.Link{}, false
	}
	ctx := Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}

// TraceID returns the trace id of the recording span in ctx, or "".
func TraceID(ctx context.Context) string {
	sp := trace.SpanFromContext(ctx)
	if !sp.IsRecording() {
		return ""
	}
	return sp.SpanContext().TraceID().String()
}

// LogHandler wraps h so that records logged with a context that holds a
// recording span get trace_id and span_id attributes, which join a log
// line to its trace. Wrap the handler only when tracing is on.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sc := sp.SpanContext()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(as)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }

// ErrorCode is the attribute of the bitkit error code an answer carried
// (apierr's "code").
func ErrorCode(code string) attribute.KeyValue { return attribute.String("bitkit.error.code", code) }

// IsCanceled reports whether err is a context cancellation (a client that
// left): not a failure of the span's work.
func IsCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// TrimRoute turns a route pattern into a span name: "POST /v2beta/query/{$}"
// becomes "POST /v2beta/query".
func TrimRoute(pattern string) string { return strings.TrimSuffix(pattern, "/{$}") }
