package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// vmHWM returns the peak resident set size of pid in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func apiCall(t *testing.T, s *bitdtest.Server, path string, body any, accept string) *http.Response {
	t.Helper()
	b, err := jsonx.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.Endpoint+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// createDatabase creates database name for s's demo user and returns its
// full name.
func createDatabase(t *testing.T, s *bitdtest.Server, name string) string {
	t.Helper()
	resp := apiCall(t, s, "/v2beta/db/", map[string]any{"name": name}, "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create database: status %d: %s", resp.StatusCode, b)
	}
	return s.User + "/" + name
}

// streamRows streams n mixed-type rows through bitd and checks every line.
func streamRows(t *testing.T, s *bitdtest.Server, db string, n int) {
	t.Helper()
	sql := fmt.Sprintf(`SELECT g, md5(g::text) AS h, g::numeric / 7 AS q, TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 second' AS ts, ARRAY[g, NULL] AS a
FROM (SELECT generate_series(1, %d) AS g) s`, n)
	resp := apiCall(t, s, "/v2beta/query", map[string]any{"database_name": db, "query_string": sql, "timeout_ms": 600000}, "application/x-ndjson")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 1<<16)
	var rows int
	var last, prev []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(line) > 0 && line[0] == '[' {
			rows++
			if rows == n {
				prev = append(prev[:0], line...)
			}
		}
		last = append(last[:0], line...)
	}
	if rows != n {
		t.Fatalf("streamed %d rows, want %d", rows, n)
	}
	want := fmt.Sprintf(`[%d,`, n)
	if !bytes.HasPrefix(prev, []byte(want)) || !bytes.Contains(prev, []byte(fmt.Sprintf(`[%d,null]]`, n))) {
		t.Errorf("last row = %s", prev)
	}
	if got := strings.TrimSpace(string(last)); got != fmt.Sprintf(`{"row_count":%d,"command":"SELECT"}`, n) {
		t.Errorf("trailer = %s", got)
	}
}

// TestQueryStreamMemoryBounded streams 200,000 and then 2,000,000 rows
// through the real bitd binary: bitd's peak RSS must not grow with the row
// count.
func TestQueryStreamMemoryBounded(t *testing.T) {
	s := bitdtest.Start(t)
	db := createDatabase(t, s, "streammem")

	streamRows(t, s, db, 200_000)
	small := vmHWM(t, s.Pid())
	streamRows(t, s, db, 2_000_000)
	large := vmHWM(t, s.Pid())
	t.Logf("bitd peak RSS: %d KiB after 200k rows, %d KiB after 2M rows", small, large)
	const marginKiB = 48 << 10
	if large > small+marginKiB {
		t.Errorf("bitd's peak RSS grew from %d KiB (200k rows) to %d KiB (2M rows): streaming memory is not bounded", small, large)
	}
}

// TestQueryThroughBitd checks the query endpoints as bitd wires them
// (authentication, resolution, limits from flags).
func TestQueryThroughBitd(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--max-result-rows", "100"))
	db := createDatabase(t, s, "wired")
	call := func(path string, body map[string]any) (int, string) {
		resp := apiCall(t, s, path, body, "")
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name, path string
		body       map[string]any
		status     int
		contains   []string
	}{
		{"exact int8 and numeric", "/v2beta/query", map[string]any{"database_name": db,
			"query_string": "SELECT $1::int8 AS n, 1234567890123456789012345678901234567890.5::numeric AS d", "params": []any{jsonx.Number("9223372036854775807")}},
			http.StatusOK, []string{`"data":[[9223372036854775807,1234567890123456789012345678901234567890.5]]`, `"metadata":{"n":"bigint","d":"numeric"}`}},
		{"row cap from the flag", "/v2beta/query", map[string]any{"database_name": db, "query_string": "SELECT generate_series(1, 101)"},
			http.StatusRequestEntityTooLarge, []string{`"code":"result_too_large"`, "100 rows", "application/x-ndjson", `"request_id"`}},
		{"timeout", "/v2beta/query", map[string]any{"database_name": db, "query_string": "SELECT pg_sleep(30)", "timeout_ms": 300},
			http.StatusRequestTimeout, []string{`"code":"query_timeout"`}},
		{"batch", "/v2beta/query/batch", map[string]any{"database_name": db, "queries": []any{
			map[string]any{"query_string": "CREATE TABLE w (x int)"}, map[string]any{"query_string": "SELECT 1/0"}}},
			http.StatusBadRequest, []string{`"index":1`, `"sqlstate":"22012"`}},
		{"unknown database", "/v2beta/query", map[string]any{"database_name": s.User + "/nope", "query_string": "SELECT 1"},
			http.StatusNotFound, []string{`"code":"not_found"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := call(c.path, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			for _, want := range c.contains {
				if !strings.Contains(body, want) {
					t.Errorf("answer %s lacks %s", body, want)
				}
			}
		})
	}
}
