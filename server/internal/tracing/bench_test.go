package tracing_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// discardExporter drops spans: the benchmarks measure bitd's side of
// tracing (span creation, attributes, the batch processor), not a
// receiver.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkHTTPQuery runs POST /v2beta/query "SELECT 1" through the real
// HTTP stack on real PostgreSQL, untraced (off: no tracer, as bitd without
// --otlp-endpoint) and traced (on: every request recorded, five spans,
// batched to an exporter that drops them).
func BenchmarkHTTPQuery(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			var opts []sdktrace.TracerProviderOption
			if mode == "on" {
				opts = append(opts, sdktrace.WithBatcher(discardExporter{}))
			}
			s := newStackWith(b, false, mode == "on", opts...)
			body, _ := jsonx.Marshal(map[string]any{"database_name": s.user + "/traced", "query_string": "SELECT 1"})
			client := &http.Client{}
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("POST", s.ts.URL+"/v2beta/query", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.key)
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatal(res.Status)
				}
			}
		})
	}
}
