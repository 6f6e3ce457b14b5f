//go:build !js

package workerdtest_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/workers/workerdtest"
)

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkWorker measures, in the same run against the same bitd:
// start-ms, workerd spawn → first answered request (GET /healthz, which
// needs a Go instance; median of 3 starts); cold-ms, the first POST /query
// after that start (median of 3); warm-ms, later POST /query requests
// (median; every request still starts a fresh Go instance); all of them with
// BITKIT_WORKER_TOKEN set and sent, as deployed; core-ms, the same
// query from a native Go client using core (median); ratio = warm-ms /
// core-ms; and the bundle size.
func BenchmarkWorker(b *testing.B) {
	s := bitdtest.Start(b)
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		b.Fatal(err)
	}
	db, err := c.CreateDatabase(b.Context(), core.CreateDatabaseRequest{Name: bitdtest.UniqueName("wb")})
	if err != nil {
		b.Fatal(err)
	}
	for _, sql := range []string{"create table pets (id int8 primary key, name text)", "insert into pets values (1, 'rex'), (2, 'tom')"} {
		if _, err := c.Query(b.Context(), db.Name, sql); err != nil {
			b.Fatal(err)
		}
	}
	const sql = "select id, name from pets order by id"
	body := `{"database":"` + db.Name + `","query":"` + sql + `"}`
	token := workerdtest.NewToken(b)
	bindings := []workerdtest.Binding{{Name: "BITKIT_ENDPOINT", Value: s.Endpoint}, {Name: "BITKIT_API_KEY", Value: s.APIKey},
		{Name: "BITKIT_WORKER_TOKEN", Value: token}}
	query := func(w *workerdtest.Worker) time.Duration {
		t0 := time.Now()
		status, out, err := workerdtest.Post(b.Context(), w.URL+"/query", token, body)
		d := time.Since(t0)
		if err != nil || status != 200 || !strings.Contains(out, `"rex"`) {
			b.Fatalf("POST /query: %d %v %s", status, err, out)
		}
		return d
	}
	var starts, colds []time.Duration
	var w *workerdtest.Worker
	for range 3 {
		w = workerdtest.Start(b, bindings...)
		starts = append(starts, w.Ready.Sub(w.Started))
		colds = append(colds, query(w))
	}
	if _, err := c.Query(b.Context(), db.Name, sql); err != nil {
		b.Fatal(err)
	}
	var warm, native []time.Duration
	b.ResetTimer()
	for b.Loop() {
		warm = append(warm, query(w))
		t0 := time.Now()
		if _, err := c.Query(b.Context(), db.Name, sql); err != nil {
			b.Fatal(err)
		}
		native = append(native, time.Since(t0))
	}
	b.StopTimer()
	raw, gz, err := workerdtest.BundleSize(workerdtest.Build(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms(median(starts)), "start-ms")
	b.ReportMetric(ms(median(colds)), "cold-ms")
	b.ReportMetric(ms(median(warm)), "warm-ms")
	b.ReportMetric(ms(median(native)), "core-ms")
	b.ReportMetric(float64(median(warm))/float64(median(native)), "ratio")
	b.ReportMetric(float64(raw), "wasm-B")
	b.ReportMetric(float64(gz), "wasm-gzip-B")
}
