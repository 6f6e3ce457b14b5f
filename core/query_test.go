package core

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// bodyRecorder answers 200 {} (or the given JSON) and keeps request bodies and URLs.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []map[string]any
	urls   []string
	answer string
	status int
}

func (b *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	m := map[string]any{}
	_ = unmarshalNumbers(raw, &m)
	b.mu.Lock()
	b.bodies = append(b.bodies, m)
	b.urls = append(b.urls, r.URL.String())
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if b.status != 0 {
		w.WriteHeader(b.status)
	}
	if b.answer == "" {
		io.WriteString(w, `{}`)
		return
	}
	io.WriteString(w, b.answer)
}

func TestQueryRequestShape(t *testing.T) {
	t.Parallel()
	br := &bodyRecorder{answer: `{"query_string":"q","columns":[{"name":"a","type":"int8"}],"data":[]}`}
	srv := newHTTPServer(t, br)
	c := newTestClient(t, srv, newFakeClock())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Query(ctx, "a/b", "select $1, $2", 1, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.QueryWith(t.Context(), QueryRequest{Database: "a/b", SQL: "s", Timeout: 3 * time.Second, DataFormat: "objects"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.QueryWith(t.Context(), QueryRequest{Database: "a/b", SQL: "s", DataFormat: "csv"}); err == nil {
		t.Fatal("bad data format accepted")
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	b0 := br.bodies[0]
	ms, _ := b0["timeout_ms"].(jsonx.Number).Int64()
	if b0["database_name"] != "a/b" || b0["query_string"] != "select $1, $2" || len(b0["params"].([]any)) != 2 {
		t.Fatalf("body %v", b0)
	}
	// Sent as the time left minus a margin: below 10s, and not far below.
	if ms >= 10000 || ms < 9000 {
		t.Fatalf("timeout_ms = %d for a 10s deadline", ms)
	}
	if b1 := br.bodies[1]; b1["timeout_ms"] != jsonx.Number("3000") || !strings.Contains(br.urls[1], "data_format=objects") {
		t.Fatalf("explicit timeout body %v url %s", b1, br.urls[1])
	}
	if _, ok := b0["params"]; !ok {
		t.Fatal("params missing")
	}
}

func TestAccountAndCreateDatabaseBody(t *testing.T) {
	t.Parallel()
	br := &bodyRecorder{answer: `{"account_id":"acc-7","name":"acme/x"}`}
	srv := newHTTPServer(t, br)
	c := newTestClient(t, srv, newFakeClock(), WithAccount("acme"))
	id, err := c.AccountID(t.Context())
	if err != nil || id != "acc-7" {
		t.Fatalf("%q %v", id, err)
	}
	if _, err := c.CreateDatabase(t.Context(), CreateDatabaseRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	br.mu.Lock()
	if !strings.Contains(br.urls[0], "/iam/v2/accounts:getIdByName?account_name=acme") || br.bodies[1]["account"] != "acme" || br.bodies[1]["name"] != "x" {
		t.Fatalf("urls %v bodies %v", br.urls, br.bodies)
	}
	br.mu.Unlock()

	nf := &bodyRecorder{status: 404, answer: `{"error":"no such account","code":"not_found"}`}
	c2 := newTestClient(t, newHTTPServer(t, nf), newFakeClock(), WithAccount("ghost"))
	_, err = c2.AccountID(t.Context())
	if !errors.Is(err, ErrAccountNotFound) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"ghost"`) {
		t.Fatalf("err = %v", err)
	}
}
