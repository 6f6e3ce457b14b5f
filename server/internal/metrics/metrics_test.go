package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// registered returns the metric family names m gathers.
func registered(t *testing.T, m *Metrics) map[string]bool {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

func withCollectors() *Metrics {
	m := New()
	m.AddPools("default", func() PoolStats {
		return PoolStats{Pools: 2, InUse: 3, Idle: 4, Max: 20, Waiting: 1, WaitsTotal: 5, WaitSeconds: 0.5}
	})
	m.AddWire(func() WireStats {
		return WireStats{Sessions: 1, SessionsTotal: 7, BytesToBackend: 100, BytesToClient: 900}
	})
	m.AddCache(func() CacheStats { return CacheStats{Entries: 3, Hits: 10, Misses: 2, Invalidations: 1} })
	m.AddJobQueue(func(context.Context) ([]JobCount, error) {
		return []JobCount{{"import", "RECEIVED", 2}, {"export", "PROCESSING", 1}}, nil
	})
	return m
}

func TestCountersAndCollectors(t *testing.T) {
	t.Parallel()
	m := withCollectors()
	m.HTTPRequest("POST /v2beta/query", "POST", 200, 3*time.Millisecond, 120)
	m.HTTPRequest("POST /v2beta/query", "POST", 200, 5*time.Millisecond, 80)
	m.HTTPRequest("unmatched", "GET", 404, time.Millisecond, 0)
	m.HTTPRequest("unmatched", "FOO1", 405, time.Millisecond, 0)
	m.HTTPRequest("unmatched", "FOO2", 405, time.Millisecond, 0)
	m.QueryRows(10)
	m.LoginFailed()
	m.LoginLimited("busy")
	m.JobFinished("import", "DONE", 2*time.Second, 1000, 5000)
	m.SetDraining(true)
	rt := m.Route("GET /v2beta/db/{account}/{db}")
	rt.Observe(200, time.Millisecond, 10)
	rt.Observe(404, time.Millisecond, 10)
	rt.Observe(404, time.Millisecond, 10)

	checks := []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("POST /v2beta/query", "POST", "200")), 2, "query requests"},
		{testutil.ToFloat64(m.httpBytes.WithLabelValues("POST /v2beta/query")), 200, "query bytes"},
		{testutil.ToFloat64(m.queryRows), 10, "query rows"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("unmatched", "other", "405")), 2, "odd methods"},
		{testutil.ToFloat64(m.loginFails), 1, "login failures"},
		{testutil.ToFloat64(m.loginLimited.WithLabelValues("busy")), 1, "busy logins"},
		{testutil.ToFloat64(m.loginLimited.WithLabelValues("failures")), 0, "limited logins"},
		{testutil.ToFloat64(m.jobRows.WithLabelValues("import")), 1000, "import rows"},
		{testutil.ToFloat64(m.draining), 1, "draining"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("GET /v2beta/db/{account}/{db}", "GET", "404")), 2, "route 404s"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("GET /v2beta/db/{account}/{db}", "GET", "200")), 1, "route 200s"},
		{testutil.ToFloat64(m.httpBytes.WithLabelValues("GET /v2beta/db/{account}/{db}")), 30, "route bytes"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	exp := `
# HELP bitd_pool_connections Connections of the HTTP query pools by state: in_use, idle, waiting (callers waiting for one), max (the pools' bound).
# TYPE bitd_pool_connections gauge
bitd_pool_connections{cluster="default",state="idle"} 4
bitd_pool_connections{cluster="default",state="in_use"} 3
bitd_pool_connections{cluster="default",state="max"} 20
bitd_pool_connections{cluster="default",state="waiting"} 1
# HELP bitd_wire_bytes_total Bytes relayed by the wire proxy, by direction (to_backend, to_client).
# TYPE bitd_wire_bytes_total counter
bitd_wire_bytes_total{direction="to_backend"} 100
bitd_wire_bytes_total{direction="to_client"} 900
# HELP bitd_jobs Import and export jobs in the shared queue by kind and state (RECEIVED: waiting, PROCESSING: running); the same for every bitd on one metadata database.
# TYPE bitd_jobs gauge
bitd_jobs{kind="export",state="PROCESSING"} 1
bitd_jobs{kind="import",state="RECEIVED"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(exp), "bitd_pool_connections", "bitd_wire_bytes_total", "bitd_jobs"); err != nil {
		t.Error(err)
	}
}

// Error answers are counted by route and code; a code outside the API's
// shape is counted as "other", so the label stays bounded.
func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	m := New()
	m.HTTPError("POST /v2beta/query", "query_timeout")
	m.HTTPError("POST /v2beta/query", "query_timeout")
	m.HTTPError("unmatched", "not_found")
	m.HTTPError("POST /v2beta/query", "Bad Code")
	m.HTTPError("POST /v2beta/query", "a_code_longer_than_sixty_four_bytes_is_not_one_of_the_api_fixed_words")
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"POST /v2beta/query", "query_timeout", 2},
		{"unmatched", "not_found", 1},
		{"POST /v2beta/query", "other", 2},
	} {
		if got := testutil.ToFloat64(m.httpErrors.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("bitd_http_errors_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.httpErrors); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
}

// A failing job-queue read makes that family an error of the scrape, not
// a panic or a missing answer for the others.
func TestJobQueueError(t *testing.T) {
	t.Parallel()
	m := New()
	m.AddJobQueue(func(context.Context) ([]JobCount, error) { return nil, errors.New("metadata database down") })
	_, err := m.Registry().Gather()
	if err == nil || !strings.Contains(err.Error(), "metadata database down") {
		t.Fatalf("Gather error %v, want the queue's error", err)
	}
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.HTTPRequest("x", "GET", 200, time.Millisecond, 1)
	m.QueryRows(1)
	m.LoginFailed()
	m.LoginLimited("busy")
	m.JobFinished("import", "DONE", time.Second, 1, 1)
	m.SetDraining(true)
	m.HTTPError("x", "not_found")
	m.AddPools("default", nil)
	m.AddWire(nil)
	m.AddCache(nil)
	m.AddJobQueue(nil)
}

// Every bitd_* series the Grafana dashboard queries exists.
func TestGrafanaDashboardNames(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "grafana-bitd.json"))
	if err != nil {
		t.Fatal(err)
	}
	have := registered(t, func() *Metrics {
		m := withCollectors()
		m.HTTPRequest("r", "GET", 200, time.Millisecond, 1) // vectors appear once used
		m.JobFinished("import", "DONE", time.Second, 1, 1)
		return m
	}())
	used := regexp.MustCompile(`bitd_[a-z_]+`).FindAllString(string(b), -1)
	if len(used) < 10 {
		t.Fatalf("the dashboard queries only %d bitd series", len(used))
	}
	for _, n := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
		if !have[base] {
			t.Errorf("the dashboard queries %s, which bitd does not export", n)
		}
	}
}

// BenchmarkHTTPRequest is the request path's cost of being measured.
func BenchmarkHTTPRequest(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.HTTPRequest("POST /v2beta/query", "POST", 200, 700*time.Microsecond, 60)
		}
	})
}

// BenchmarkRouteObserve is HTTPRequest with the route resolved once, as the
// API does for its registered routes.
func BenchmarkRouteObserve(b *testing.B) {
	r := New().Route("POST /v2beta/query")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(200, 700*time.Microsecond, 60)
		}
	})
}
