package tracing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestResolveEndpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, flag string
		env        map[string]string
		want       string
		wantErr    string
	}{
		{name: "off"},
		{name: "flag base", flag: "http://127.0.0.1:4318", want: "http://127.0.0.1:4318/v1/traces"},
		{name: "flag base slash", flag: "http://127.0.0.1:4318/", want: "http://127.0.0.1:4318/v1/traces"},
		{name: "flag full path", flag: "https://otel.example:443/custom/traces", want: "https://otel.example:443/custom/traces"},
		{name: "traces env as is", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:1/", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:2"},
			want: "http://h:1/"},
		{name: "base env", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:2"}, want: "http://h:2/v1/traces"},
		{name: "flag wins", flag: "http://f:3", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:2"}, want: "http://f:3/v1/traces"},
		{name: "no scheme", flag: "127.0.0.1:4318", wantErr: "--otlp-endpoint must be an http:// or https:// URL"},
		{name: "grpc scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://h:4317"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT must be"},
		{name: "credentials", flag: "https://user:hunter2@h:4318", wantErr: "OTEL_EXPORTER_OTLP_HEADERS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveEndpoint(tc.flag, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("ResolveEndpoint = %q, %v; want an error with %q (and no password)", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ResolveEndpoint = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestErrorLogOncePerInterval: a receiver that stays down logs one line
// per interval, with the count of the errors it kept quiet about.
func TestErrorLogOncePerInterval(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	e := &errorLog{log: slog.New(slog.NewTextHandler(&buf, nil)), every: time.Hour}
	for range 5 {
		e.Handle(errors.New("connection refused"))
	}
	if n := strings.Count(buf.String(), "exporting spans failed"); n != 1 {
		t.Fatalf("5 errors within the interval logged %d lines, want 1:\n%s", n, buf.String())
	}
	e.mu.Lock()
	e.last = time.Now().Add(-2 * time.Hour) // the interval passed
	e.mu.Unlock()
	e.Handle(errors.New("connection refused"))
	if n := strings.Count(buf.String(), "exporting spans failed"); n != 2 || !strings.Contains(buf.String(), "errors_suppressed=4") {
		t.Fatalf("after the interval: %d lines, want 2 with errors_suppressed=4:\n%s", n, buf.String())
	}
}

// TestOffCostsNothing: without a recording span in the context, Start
// starts nothing, returns the same context and allocates nothing, and so
// do Inject, TraceID and End.
func TestOffCostsNothing(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		c, sp := Start(ctx, "db.query")
		if sp != nil || c != ctx {
			t.Fatal("Start without a recording span started one")
		}
		End(sp, nil)
		if Inject(ctx) != "" || TraceID(ctx) != "" {
			t.Fatal("trace context without a span")
		}
	})
	if allocs != 0 {
		t.Fatalf("tracing off allocates %v times per call, want 0", allocs)
	}
	// Sampled out: a non-recording root span has no children either.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	rctx, root := tp.Tracer(Scope).Start(ctx, "root")
	if _, sp := Start(rctx, "child"); sp != nil {
		t.Fatal("a child span under a sampled-out root")
	}
	root.End()
}

// TestInjectLink: the traceparent a traced request gives its job links the
// job's run back to it.
func TestInjectLink(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, sp := tp.Tracer(Scope).Start(context.Background(), "request")
	tpHeader := Inject(ctx)
	if tpHeader == "" || !strings.Contains(tpHeader, sp.SpanContext().TraceID().String()) {
		t.Fatalf("Inject = %q, want the traceparent of trace %s", tpHeader, sp.SpanContext().TraceID())
	}
	sp.End()
	l, ok := Link(tpHeader)
	if !ok || l.SpanContext.SpanID() != sp.SpanContext().SpanID() || l.SpanContext.TraceID() != sp.SpanContext().TraceID() {
		t.Fatalf("Link(%q) = %v, %v; want the request's span", tpHeader, l.SpanContext, ok)
	}
	for _, bad := range []string{"", "00-zz-yy-01", "not a traceparent"} {
		if _, ok := Link(bad); ok {
			t.Errorf("Link(%q) is valid", bad)
		}
	}
}

// TestSampler: at ratio 0 a client's sampled parent is still recorded, an
// unsampled one is not, a new root is not unless it links to a sampled
// span (a job run created by a traced request); at ratio 1 every new root
// is.
func TestSampler(t *testing.T) {
	t.Parallel()
	sampledTP := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	unsampledTP := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	remote := func(tp string) context.Context {
		return Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	}
	link, _ := Link(sampledTP)
	unsampledLink, _ := Link(unsampledTP)
	for _, tc := range []struct {
		name   string
		ratio  float64
		ctx    context.Context
		opts   []trace.SpanStartOption
		record bool
	}{
		{"sampled parent, ratio 0", 0, remote(sampledTP), nil, true},
		{"unsampled parent, ratio 1", 1, remote(unsampledTP), nil, false},
		{"root, ratio 0", 0, context.Background(), nil, false},
		{"root, ratio 1", 1, context.Background(), nil, true},
		{"root linked to a sampled span, ratio 0", 0, context.Background(), []trace.SpanStartOption{trace.WithLinks(link)}, true},
		{"root linked to an unsampled span, ratio 0", 0, context.Background(), []trace.SpanStartOption{trace.WithLinks(unsampledLink)}, false},
		{"new root under a sampled parent, linked to it, ratio 0", 0, remote(sampledTP),
			[]trace.SpanStartOption{trace.WithNewRoot(), trace.WithLinks(link)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(Sampler(tc.ratio)))
			_, sp := tp.Tracer(Scope).Start(tc.ctx, "x", tc.opts...)
			defer sp.End()
			if sp.IsRecording() != tc.record || sp.SpanContext().IsSampled() != tc.record {
				t.Fatalf("recording %v, sampled %v; want %v", sp.IsRecording(), sp.SpanContext().IsSampled(), tc.record)
			}
		})
	}
}
