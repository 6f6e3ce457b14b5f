package tracing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/query"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// stack is bitd's HTTP stack as serve builds it, on real PostgreSQL: the
// store on a fresh metadata database, the pools, the access layer, the API
// server with the query routes, and a tracer provider that records spans
// in memory.
type stack struct {
	st     *store.Store
	rec    *tracetest.SpanRecorder
	ts     *httptest.Server
	key    string // the user's API key
	user   string
	logBuf *bitdtest.LogBuffer
}

func newStack(t *testing.T, traceSQL bool) *stack {
	t.Helper()
	return newStackWith(t, traceSQL, true)
}

// newStackWith is newStack with tracing on or off (no tracer at all), and
// more options for the tracer provider (benchmarks).
func newStackWith(t testing.TB, traceSQL, traced bool, opts ...sdktrace.TracerProviderOption) *stack {
	t.Helper()
	ctx := t.Context()
	adminURL := bitdtest.DatabaseURL(t)
	sec := make([]byte, 32)
	_, _ = rand.Read(sec)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Options{AdminURL: adminURL, MetadataDB: bitdtest.UniqueName("bitkit_t_trace_"), Secret: sec, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	pools := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec, Logger: quiet})
	t.Cleanup(func() {
		pools.Close()
		if err := st.DropEverything(context.Background()); err != nil {
			t.Error(err)
		}
	})
	acc := access.New(access.Config{Store: st, Pools: pools, Logger: quiet})
	s := &stack{st: st, rec: tracetest.NewSpanRecorder(), logBuf: &bitdtest.LogBuffer{}}
	if len(opts) == 0 { // tests: record spans in memory; benchmarks bring their processor
		opts = append(opts, sdktrace.WithSpanProcessor(s.rec))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// As serve does with tracing on: log lines of traced requests carry
	// their trace_id.
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(s.logBuf, nil)))
	o := api.Options{Store: st, Access: acc, Logger: log, Tracer: tp.Tracer(tracing.Scope)}
	if !traced {
		o.Tracer, log = nil, slog.New(slog.NewTextHandler(s.logBuf, nil))
		o.Logger = log
	}
	srv := api.New(o)
	qh := query.New(query.Config{Logger: log, TraceSQL: traceSQL}, acc, nil)
	srv.Handle("POST /v2beta/query", apierr.HandlerFunc(qh.ServeQuery), api.NoBodyLimit)
	s.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(s.ts.Close)

	s.user = bitdtest.UniqueName("tr")
	u, err := st.EnsureUser(ctx, s.user)
	if err != nil {
		t.Fatal(err)
	}
	if s.key, err = st.CreateUserAPIKey(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if code, body := s.call(t, "POST", "/v2beta/db/", "", map[string]any{"name": "traced"}); code != 201 {
		t.Fatalf("create database: %d %s", code, body)
	}
	s.rec.Reset()
	return s
}

// call sends a request with the user's key and, unless empty, a
// traceparent header; it returns the status and body.
func (s *stack) call(t testing.TB, method, path, traceparent string, body any) (int, string) {
	t.Helper()
	b, _ := jsonx.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), method, s.ts.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

// clientTrace returns a fresh client-made trace and span id and their
// traceparent.
func clientTrace() (trace.TraceID, trace.SpanID, string) {
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return tid, sid, fmt.Sprintf("00-%s-%s-01", tid, sid)
}

func attrs(sp sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range sp.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// inTrace returns the ended spans of trace tid by name (the last of each
// name), once its server span ended: that happens just after the answer
// reached the client.
func (s *stack) inTrace(t *testing.T, tid trace.TraceID) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	var out map[string]sdktrace.ReadOnlySpan
	testwait.Eventually(t, 10*time.Second, func() error {
		out = map[string]sdktrace.ReadOnlySpan{}
		server := false
		for _, sp := range s.rec.Ended() {
			if sp.SpanContext().TraceID() == tid {
				out[sp.Name()] = sp
				server = server || sp.SpanKind() == trace.SpanKindServer
			}
		}
		if !server {
			return fmt.Errorf("the server span of trace %s has not ended; spans so far: %v", tid, names(out))
		}
		return nil
	})
	return out
}

// noSecret fails when any attribute, event attribute or status of any
// recorded span holds one of secrets.
func (s *stack) noSecret(t *testing.T, secrets ...string) {
	t.Helper()
	for _, sp := range s.rec.Ended() {
		var all []string
		all = append(all, sp.Name(), sp.Status().Description)
		for _, kv := range sp.Attributes() {
			all = append(all, kv.Value.String())
		}
		for _, ev := range sp.Events() {
			for _, kv := range ev.Attributes {
				all = append(all, kv.Value.String())
			}
		}
		for _, v := range all {
			for _, sec := range secrets {
				if strings.Contains(v, sec) {
					t.Errorf("span %q holds a secret %q in %q", sp.Name(), sec, v)
				}
			}
		}
	}
}

// TestHTTPQuerySpans sends a parameterised query with a client-made
// traceparent through the real HTTP stack on real PostgreSQL and checks the
// spans: the server span continues the client's trace, is named by the
// route and carries method, route and status; the access lookups, the
// pool acquire and the query execution (db.system, db.namespace, rows) are
// its children; the access log line carries the trace_id; no attribute
// holds the API key, the parameter value or (without --trace-sql) the SQL.
func TestHTTPQuerySpans(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	tid, parent, tp := clientTrace()
	param := "param-" + hex.EncodeToString([]byte(bitdtest.UniqueName("")))
	sql := "SELECT $1::text AS v, g FROM generate_series(1, 3) g"
	code, body := s.call(t, "POST", "/v2beta/query", tp, map[string]any{
		"database_name": s.user + "/traced", "query_string": sql, "params": []string{param}})
	if code != 200 || !strings.Contains(body, param) {
		t.Fatalf("query: %d %s", code, body)
	}
	spans := s.inTrace(t, tid)
	root := spans["POST /v2beta/query"]
	if root == nil {
		t.Fatalf("no span POST /v2beta/query in the client's trace; got %v", names(spans))
	}
	if root.Parent().SpanID() != parent || !root.Parent().IsRemote() || root.SpanKind() != trace.SpanKindServer {
		t.Errorf("server span: parent %s (remote %v), kind %v; want the client's span %s, remote, server",
			root.Parent().SpanID(), root.Parent().IsRemote(), root.SpanKind(), parent)
	}
	ra := attrs(root)
	if ra["http.request.method"].AsString() != "POST" || ra["http.route"].AsString() != "/v2beta/query" ||
		ra["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("server span attributes = %v", ra)
	}
	if _, ok := ra["bitkit.error.code"]; ok {
		t.Errorf("a successful request has an error code: %v", ra)
	}
	for _, name := range []string{"access.principal", "access.database", "pool.acquire", "db.query"} {
		sp := spans[name]
		if sp == nil {
			t.Errorf("no %s span; got %v", name, names(spans))
			continue
		}
		if sp.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("%s: parent %s, want the server span %s", name, sp.Parent().SpanID(), root.SpanContext().SpanID())
		}
	}
	if sp := spans["access.database"]; sp != nil {
		if hit, ok := attrs(sp)["bitkit.cache.hit"]; !ok || hit.AsBool() {
			t.Errorf("first resolution: bitkit.cache.hit = %v (set %v), want false", hit.AsBool(), ok)
		}
	}
	if sp := spans["db.query"]; sp != nil {
		qa := attrs(sp)
		if qa["db.system"].AsString() != "postgresql" || qa["db.namespace"].AsString() != s.user+"/traced" ||
			qa["db.response.returned_rows"].AsInt64() != 3 || qa["bitkit.params"].AsInt64() != 1 {
			t.Errorf("db.query attributes = %v", qa)
		}
		if _, ok := qa["db.query.text"]; ok {
			t.Errorf("db.query holds the SQL text without --trace-sql: %v", qa)
		}
	}
	if log := s.logBuf.String(); !strings.Contains(log, "trace_id="+tid.String()) {
		t.Errorf("the access log has no trace_id=%s:\n%s", tid, log)
	}
	s.noSecret(t, s.key, param, "generate_series")

	t.Run("error code", func(t *testing.T) {
		tid, _, tp := clientTrace()
		code, _ := s.call(t, "POST", "/v2beta/query", tp, map[string]any{
			"database_name": s.user + "/missing", "query_string": "SELECT 1"})
		if code != 404 {
			t.Fatalf("query on a missing database: %d", code)
		}
		root := s.inTrace(t, tid)["POST /v2beta/query"]
		if root == nil {
			t.Fatal("no server span")
		}
		a := attrs(root)
		if a["http.response.status_code"].AsInt64() != 404 || a["bitkit.error.code"].AsString() != "not_found" {
			t.Errorf("server span of a 404: %v", a)
		}
	})
	t.Run("new trace without traceparent", func(t *testing.T) {
		s.rec.Reset()
		if code, body := s.call(t, "POST", "/v2beta/query", "", map[string]any{
			"database_name": s.user + "/traced", "query_string": "SELECT 1"}); code != 200 {
			t.Fatalf("query: %d %s", code, body)
		}
		var root sdktrace.ReadOnlySpan
		testwait.Eventually(t, 10*time.Second, func() error {
			for _, sp := range s.rec.Ended() {
				if sp.Name() == "POST /v2beta/query" {
					root = sp
					return nil
				}
			}
			return fmt.Errorf("no server span yet")
		})
		if root.Parent().IsValid() {
			t.Fatalf("without traceparent the server span must be a root span; its parent is %v", root.Parent())
		}
	})
}

// TestTraceSQL: with --trace-sql the query span holds the SQL text, and
// still neither the parameters nor the key.
func TestTraceSQL(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	tid, _, tp := clientTrace()
	param := "param-" + bitdtest.UniqueName("")
	sql := "SELECT $1::text AS v"
	if code, body := s.call(t, "POST", "/v2beta/query", tp, map[string]any{
		"database_name": s.user + "/traced", "query_string": sql, "params": []string{param}}); code != 200 {
		t.Fatalf("query: %d %s", code, body)
	}
	sp := s.inTrace(t, tid)["db.query"]
	if sp == nil {
		t.Fatal("no db.query span")
	}
	if got := attrs(sp)["db.query.text"].AsString(); got != sql {
		t.Errorf("db.query.text = %q, want %q", got, sql)
	}
	s.noSecret(t, s.key, param)
}

func names(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
