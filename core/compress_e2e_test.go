//go:build !js

package core_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// encodingRecorder records, per answer, whether net/http decompressed it
// (it asked for gzip itself and the server sent gzip).
type encodingRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []bool
}

func (e *encodingRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := e.base.RoundTrip(r)
	if err == nil {
		e.mu.Lock()
		e.seen = append(e.seen, res.Uncompressed)
		e.mu.Unlock()
	}
	return res, err
}

// TestE2ECompressedAnswers: core's native transport asks bitd for gzip by
// itself and reads compressed answers, buffered and streamed, transparently.
func TestE2ECompressedAnswers(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	rec := &encodingRecorder{base: http.DefaultTransport}
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey), core.WithTransport(rec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: "gz"}); err != nil {
		t.Fatal(err)
	}
	db := s.User + "/gz"
	const n = 20000
	sql := "SELECT g AS n, 'row ' || g AS s FROM generate_series(1, 20000) g"
	res, err := c.Query(ctx, db, sql)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != n {
		t.Fatalf("buffered: %d rows, want %d", len(res.Rows), n)
	}
	rec.mu.Lock()
	buffered := rec.seen[len(rec.seen)-1]
	rec.mu.Unlock()
	if !buffered {
		t.Fatal("the buffered answer was not sent compressed (net/http did not decompress it)")
	}
	st, err := c.QueryStream(ctx, core.QueryRequest{Database: db, SQL: sql})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var rows int64
	for row, err := range st.All() {
		if err != nil {
			t.Fatal(err)
		}
		var v int64
		var s string
		if err := row.Scan(&v, &s); err != nil {
			t.Fatal(err)
		}
		rows++
		if v != rows || s != "row "+strconv.FormatInt(rows, 10) {
			t.Fatalf("row %d = %d %q", rows, v, s)
		}
	}
	if rows != n {
		t.Fatalf("streamed %d rows, want %d", rows, n)
	}
	rec.mu.Lock()
	streamed := rec.seen[len(rec.seen)-1]
	rec.mu.Unlock()
	if !streamed {
		t.Fatal("the stream was not sent compressed")
	}
}
