package main

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/jackc/pgx/v5"
)

// TestLoginFlood sends far more concurrent logins than there are hashing
// slots (GOMAXPROCS=1 gives bitd a single slot): every answer is 200 or 429
// login_busy with Retry-After, never a 5xx.
func TestLoginFlood(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Env("GOMAXPROCS=1"))
	name := bitdtest.UniqueName("flood_")
	s.NewUser(t, name, "flood-pass-1")
	const n = 64
	var wg sync.WaitGroup
	results := make([]resp, n)
	for i := range n {
		wg.Go(func() {
			results[i] = call(t, "POST", s.Endpoint+"/auth/v1/login", "", map[string]any{"username": name, "password": "flood-pass-1"})
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for _, r := range results {
		counts[r.Status]++
		switch r.Status {
		case http.StatusOK:
			if !strings.HasPrefix(r.str("access_token"), "bkt_") {
				t.Errorf("200 without an access token: %s", r.Raw)
			}
		case http.StatusTooManyRequests:
			if r.str("code") != "login_busy" || r.Header.Get("Retry-After") != "1" {
				t.Errorf("429 = %s (Retry-After %q); want code login_busy and Retry-After 1", r.Raw, r.Header.Get("Retry-After"))
			}
		default:
			t.Errorf("login answered %d %s; want 200 or 429", r.Status, r.Raw)
		}
	}
	if counts[http.StatusOK] == 0 {
		t.Errorf("no login succeeded: %v", counts)
	}
	t.Logf("%d concurrent logins: %v", n, counts)
}

// TestShutdownUnderLoad stops bitd with SIGTERM while an NDJSON stream is
// open (and not being read) and an export job runs: bitd exits (Stop fails
// the test if it takes 45 s) and the --ephemeral clean-up drops the metadata
// database.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	E, key := s.Endpoint, s.APIKey
	meta := metadataDB(t, s)
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "stopdb"}), http.StatusCreated, "")
	dbName := s.User + "/stopdb"

	body, _ := jsonx.Marshal(map[string]any{"database_name": dbName,
		"query_string": "select g from generate_series(1,100000000) g", "timeout_ms": 600000})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", E+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stream answered %d", res.StatusCode)
	}
	br := bufio.NewReader(res.Body)
	for range 3 { // header line and a couple of rows; then stop reading
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (got %q)", err, line)
		}
	}

	r := call(t, "POST", E+"/v2beta/db/"+dbName+"/export/", key, map[string]any{"query_string": "select pg_sleep(300)", "export_format": "csv"})
	want(t, r, http.StatusAccepted, "")

	start := time.Now()
	s.Stop(t)
	t.Logf("bitd stopped %v after SIGTERM", time.Since(start).Round(100*time.Millisecond))
	logs := s.Logs()
	if !strings.Contains(logs, "ephemeral clean-up done") {
		t.Errorf("no ephemeral clean-up in the log:\n%s", logs)
	}
	// The stream outlives the grace period, so shutdown must have cancelled
	// the in-flight requests rather than waiting for them.
	if !strings.Contains(logs, "cancelling in-flight HTTP requests") {
		t.Errorf("shutdown did not cancel the open stream:\n%s", logs)
	}
	conn, err := pgx.Connect(t.Context(), bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var left int
	if err := conn.QueryRow(t.Context(), "select count(*) from pg_database where datname = $1", meta).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("metadata database %s still exists after --ephemeral stop", meta)
	}
}
