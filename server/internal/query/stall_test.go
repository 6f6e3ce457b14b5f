package query_test

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// TestStalledStreamReleasesBackend: a client reads a stream's header line,
// then stops reading with the connection open. With a statement timeout of
// 10 minutes only the stream stall timeout (1 s on this server) can end the
// query: the backend must stop running it while the client still stalls.
func TestStalledStreamReleasesBackend(t *testing.T) {
	t.Parallel()
	e := setup(t)
	marker := "stall_marker_unit"
	body, err := jsonx.Marshal(map[string]any{"database_name": "acct/reader", "timeout_ms": 600000,
		"query_string": "SELECT a, repeat('x', 8000) AS " + marker + " FROM generate_series(1, 100000000) a"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.stalling.URL+"/v2beta/query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	header, err := bufio.NewReaderSize(resp.Body, 16).ReadString('\n')
	if err != nil || !strings.Contains(header, `"columns"`) {
		t.Fatalf("stream header line: %q, %v", header, err)
	}
	// Stall: read nothing more. The socket buffers fill, the server's write
	// blocks, and its stall deadline must cancel the query.
	e.waitNoActive(t, marker)
}

// TestNULInQueryString: a NUL character in SQL is refused up front with 400
// invalid_request naming the field, for /query and for /query/batch.
func TestNULInQueryString(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, c := range []struct {
		name, path string
		body       map[string]any
		field      string
	}{
		{"query", "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT 1\x00"}, "query_string"},
		{"query with params", "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT $1::text\x00", "params": []any{"a"}}, "query_string"},
		{"batch", "/v2beta/query/batch", map[string]any{"database_name": "acct/owner",
			"queries": []any{map[string]any{"query_string": "SELECT 1"}, map[string]any{"query_string": "SELECT\x00 2"}}}, "queries[1].query_string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := failQuery(t, e.srv.URL, c.path, c.body, http.StatusBadRequest)
			if got.Code != "invalid_request" || got.Field != c.field || !strings.Contains(got.Error, "NUL") || got.SQLState != "" {
				t.Errorf("got %+v, want invalid_request on %s naming the NUL character", got, c.field)
			}
		})
	}
}
