package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestTempFileLimit runs bitd with --temp-file-limit 1MB: a query whose
// temporary files outgrow it fails with SQLSTATE 53400, through the HTTP
// API and the wire proxy, and a tenant cannot lift the limit.
func TestTempFileLimit(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--temp-file-limit", "1MB"))
	E, key, user := s.Endpoint, s.APIKey, s.User
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "spill"}), 201, "")

	// count(DISTINCT) sorts its 2M inputs: far more than the default
	// work_mem (4MB), so the sort spills.
	big := "SELECT count(DISTINCT g) FROM generate_series(1, 2000000) g"
	r := call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": user + "/spill", "query_string": big})
	if r.Status < 400 || !strings.Contains(string(r.Raw), "53400") || !strings.Contains(string(r.Raw), "temp_file_limit") {
		t.Fatalf("HTTP spilling query: %d %s; want an error with SQLSTATE 53400", r.Status, r.Raw)
	}
	r = call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": user + "/spill",
		"query_string": "SELECT count(DISTINCT g) FROM generate_series(1, 1000) g"})
	want(t, r, 200, "")

	c := wireConn(t, s, key, user+"/spill")
	ctx := t.Context()
	var shown string
	if err := c.QueryRow(ctx, "SHOW temp_file_limit").Scan(&shown); err != nil || shown != "1MB" {
		t.Fatalf("wire session temp_file_limit %q, %v", shown, err)
	}
	if _, err := c.Exec(ctx, "SET work_mem = '64kB'"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, "SELECT g FROM generate_series(1, 2000000) g ORDER BY g DESC")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53400" {
		t.Fatalf("wire spilling sort: %v; want SQLSTATE 53400", err)
	}
	var db string
	if err := c.QueryRow(ctx, "SELECT quote_ident(current_database())").Scan(&db); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET temp_file_limit = -1", "ALTER DATABASE " + db + " RESET temp_file_limit"} {
		if _, err := c.Exec(ctx, q); !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("wire %q: %v; want SQLSTATE 42501", q, err)
		}
	}
	if strings.Contains(s.Logs(), "level=WARN msg=\"temp_file_limit") {
		t.Errorf("temp_file_limit warning with a superuser admin:\n%s", s.Logs())
	}
}

// TestTempFileLimitInvalid checks that a bad --temp-file-limit stops bitd
// before it starts, with a message naming the flag.
func TestTempFileLimitInvalid(t *testing.T) {
	t.Parallel()
	bin := bitdtest.Bitd(t)
	for _, v := range []string{"0", "5 GiB", "3TB"} {
		cmd := exec.Command(bin, "serve", "--temp-file-limit", v, "--http", "127.0.0.1:0")
		cmd.Env = append(os.Environ(), "BITD_DATABASE_URL=postgres://nobody@127.0.0.1:1/x")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--temp-file-limit") {
			t.Errorf("--temp-file-limit %q: %v\n%s", v, err, out)
		}
	}
}
