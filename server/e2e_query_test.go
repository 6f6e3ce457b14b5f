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
	resp := apiCall(t, s, "/v2beta/db/", map[string]any{"name": "streammem"}, "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create database: status %d: %s", resp.StatusCode, b)
	}
	db := s.User + "/streammem"

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
