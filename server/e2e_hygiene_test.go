package server_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// TestSessionHygieneThroughBitd runs a real bitd whose query pools hold one
// connection (--pool-max-conns 1), so every request of the test lands on
// the same backend, and checks that nothing one request does to its
// session reaches the next: SET, SET ROLE (allowed and refused),
// set_config(…, false), CREATE TEMP TABLE, PREPARE, DECLARE … WITH HOLD,
// pg_advisory_lock, LISTEN.
func TestSessionHygieneThroughBitd(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--pool-max-conns", "1"))
	db := createDatabase(t, s, "hygiene")
	query := func(t *testing.T, sql string, params ...any) (int, []byte) {
		t.Helper()
		body := map[string]any{"database_name": db, "query_string": sql}
		if params != nil {
			body["params"] = params
		}
		resp := apiCall(t, s, "/v2beta/query", body, "")
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	// state answers [pid, everything else a session can hold] as raw JSON.
	state := func(t *testing.T) (pid, rest string) {
		t.Helper()
		status, b := query(t, `SELECT pg_backend_pid(), current_setting('search_path') || ',' || current_setting('application_name') || ',' ||
			current_setting('role') || ',' || current_user || ',' || coalesce(current_setting('bk.leak', true), '') AS settings,
			(SELECT count(*) FROM pg_prepared_statements) + (SELECT count(*) FROM pg_cursors) AS statements,
			pg_advisory_unlock(424244)::int AS locks, -- pg_locks is closed to tenants; true: it was held
			(SELECT count(*) FROM pg_listening_channels()) AS listens,
			(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temps`)
		if status != http.StatusOK {
			t.Fatalf("state query: %d %s", status, b)
		}
		var r struct{ Data [][]jsonx.RawMessage }
		if err := jsonx.Unmarshal(b, &r); err != nil || len(r.Data) != 1 {
			t.Fatalf("state answer %s: %v", b, err)
		}
		var parts []string
		for _, c := range r.Data[0][1:] {
			parts = append(parts, string(c))
		}
		return string(r.Data[0][0]), strings.Join(parts, " ")
	}
	_, clean := state(t)
	if !regexp.MustCompile(`^".*" 0 0 0 0$`).MatchString(clean) {
		t.Fatalf("a fresh session already holds something: %s", clean)
	}
	owner := regexp.MustCompile(`bk_[0-9a-f]+_owner`).FindString(clean)
	if owner == "" {
		t.Fatalf("no owner role in %s", clean)
	}
	cases := []struct {
		name, sql string
		params    []any
		refused   bool
	}{
		{"SET", "SET search_path = nowhere; SET application_name = 'leaked'", nil, false},
		{"SET ROLE", "SET ROLE " + owner, nil, false},
		{"SET ROLE refused", "SET ROLE pg_read_server_files", nil, true},
		{"set_config", "SELECT set_config('bk.leak', $1, false)", []any{"leaked"}, false},
		{"CREATE TEMP TABLE", "CREATE TEMP TABLE leak_t (x int)", nil, false},
		{"PREPARE", "PREPARE leak_p AS SELECT 1", nil, false},
		{"DECLARE CURSOR WITH HOLD", "DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1", nil, false},
		{"pg_advisory_lock", "SELECT pg_advisory_lock($1)", []any{424244}, false},
		{"LISTEN", "LISTEN leak_channel", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := state(t)
			status, b := query(t, c.sql, c.params...)
			if c.refused != (status != http.StatusOK) {
				t.Fatalf("%s: status %d: %s", c.sql, status, b)
			}
			after, got := state(t)
			if after != before {
				t.Fatalf("the pool of one connection changed backend (%s → %s): the test would prove nothing", before, after)
			}
			if got != clean {
				t.Errorf("after %q the next caller's session is %s, want %s", c.sql, got, clean)
			}
		})
	}
	// A statement whose cached parameter types no longer fit the schema
	// is described again instead of failing.
	t.Run("parameter types after ALTER", func(t *testing.T) {
		for _, sql := range []string{"CREATE TABLE typed (id int, v text)", "INSERT INTO typed VALUES (1, 'one')"} {
			if status, b := query(t, sql); status != http.StatusOK {
				t.Fatalf("%s: %d %s", sql, status, b)
			}
		}
		const point = "SELECT v FROM typed WHERE id = $1"
		for range 2 {
			if status, b := query(t, point, 1); status != http.StatusOK || !strings.Contains(string(b), `"data":[["one"]]`) {
				t.Fatalf("%s: %d %s", point, status, b)
			}
		}
		if status, b := query(t, "ALTER TABLE typed ALTER id TYPE text"); status != http.StatusOK {
			t.Fatalf("ALTER: %d %s", status, b)
		}
		for _, p := range []any{"1", 1} {
			if status, b := query(t, point, p); status != http.StatusOK || !strings.Contains(string(b), `"data":[["one"]]`) {
				t.Errorf("%s with %v after the column became text: %d %s", point, p, status, b)
			}
		}
	})
}
