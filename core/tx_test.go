//go:build !js

package core_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestTxWire checks what Tx sends: the begin body, tx_id on every
// statement, and the commit and rollback paths (a transport unit test).
func TestTxWire(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v2beta/tx":
			w.WriteHeader(201)
			fmt.Fprint(w, `{"tx_id":"tx_abc","expires_at":"2030-01-01T00:00:00Z","idle_timeout_ms":15000}`)
		case "/v2beta/query":
			fmt.Fprint(w, `{"query_string":"x","columns":[{"name":"n","type":"int8"}],"data":[[1]],"row_count":1}`)
		case "/v2beta/tx/tx_abc/rollback":
			w.WriteHeader(404)
			fmt.Fprint(w, `{"code":"transaction_not_found","error":"transaction tx_abc not found"}`)
		default:
			fmt.Fprint(w, `{"tx_id":"tx_abc","status":"committed"}`)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := core.NewClient(srv.URL, core.WithAPIKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tx, err := c.Begin(ctx, "a/db", core.TxOptions{IsolationLevel: "serializable", ReadOnly: true, IdleTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if tx.ID() != "tx_abc" || tx.ExpiresAt().Year() != 2030 {
		t.Fatalf("tx = %v %v", tx.ID(), tx.ExpiresAt())
	}
	if n, err := tx.Exec(ctx, "SELECT $1", 1); err != nil || n != 1 {
		t.Fatalf("Exec = %d, %v", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Query(ctx, "SELECT 1"); !errors.Is(err, core.ErrTxDone) {
		t.Fatalf("after commit: %v", err)
	}
	// Rolling back what the server no longer has is not an error.
	if err := c.ResumeTx("a/db", "tx_abc").Rollback(ctx); err != nil {
		t.Fatalf("rollback of an ended transaction: %v", err)
	}
	want := []string{
		`POST /v2beta/tx {"database_name":"a/db","isolation_level":"serializable","read_only":true,"idle_timeout_ms":3000}`,
		`POST /v2beta/query {"database_name":"a/db","query_string":"SELECT $1","params":[1],"tx_id":"tx_abc"}`,
		`POST /v2beta/tx/tx_abc/commit `,
		`POST /v2beta/tx/tx_abc/rollback `,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

// TestTxE2E runs transactions against a real bitd.
func TestTxE2E(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tx%d", time.Now().UnixNano()%1e9)
	if _, err := c.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	db := s.User + "/" + name
	if _, err := c.Query(ctx, db, "CREATE TABLE kv (k text PRIMARY KEY, v int8 NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	// InTx commits on nil, rolls back on error.
	if err := c.InTx(ctx, db, core.TxOptions{}, func(tx *core.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO kv VALUES ('a', 9223372036854775807)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := c.InTx(ctx, db, core.TxOptions{}, func(tx *core.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO kv VALUES ('b', 1)"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	r, err := c.Query(ctx, db, "SELECT k, v FROM kv ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	var k string
	var v int64
	if len(r.Rows) != 1 || r.Scan(0, &k, &v) != nil || k != "a" || v != 9223372036854775807 {
		t.Fatalf("rows = %v", r.Rows)
	}
	// A Tx runs one request at a time: a concurrent one is refused.
	tx, err := c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := tx.Exec(ctx, "SELECT pg_sleep(1)"); done <- err }()
	time.Sleep(300 * time.Millisecond)
	_, err = c.ResumeTx(db, tx.ID()).Query(ctx, "SELECT 1")
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 409 || ae.Code != "transaction_busy" {
		t.Fatalf("concurrent request: %v, want 409 transaction_busy", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}
