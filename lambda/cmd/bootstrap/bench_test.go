package main

import (
	"slices"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkInvoke measures, in the same run against the same bitd:
// init-ms, the bootstrap's start (spawn → first /next poll, median of 5);
// lambda-ms, a warm direct invocation through the local Runtime API
// (hand-out → response, median); core-ms, the same query from a native Go
// program using core (median); and ratio = lambda-ms / core-ms.
func BenchmarkInvoke(b *testing.B) {
	s := bitdtest.Start(b)
	db := setupDB(b, s.Endpoint, s.APIKey)
	env := []string{"BITKIT_ENDPOINT=" + s.Endpoint, "BITKIT_API_KEY=" + s.APIKey}
	bootstrapBinary(b)
	var inits []time.Duration
	var fn *function
	for range 5 {
		fn = startFunction(b, env...)
		inits = append(inits, fn.api.FirstNextAt().Sub(fn.spawned))
	}
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		b.Fatal(err)
	}
	const sql = "select id, name from pets order by id"
	payload := []byte(queryJSON(db, sql, ""))
	// Warm both paths once (connection set-up, bitd's pool).
	fn.invoke(b, payload, 10*time.Second)
	if _, err := c.Query(b.Context(), db, sql); err != nil {
		b.Fatal(err)
	}
	var viaLambda, viaCore []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		r := fn.invoke(b, payload, 10*time.Second)
		viaLambda = append(viaLambda, time.Since(t0))
		if r.Err != nil {
			b.Fatalf("function error: %v", r.Err)
		}
		t0 = time.Now()
		if _, err := c.Query(b.Context(), db, sql); err != nil {
			b.Fatal(err)
		}
		viaCore = append(viaCore, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(ms(median(inits)), "init-ms")
	b.ReportMetric(ms(median(viaLambda)), "lambda-ms")
	b.ReportMetric(ms(median(viaCore)), "core-ms")
	b.ReportMetric(float64(median(viaLambda))/float64(median(viaCore)), "ratio")
}
