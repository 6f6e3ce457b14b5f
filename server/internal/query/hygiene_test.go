package query_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// sessionStateSQL reports, in one row, everything a caller could leave in
// a session: the backend (first column), settings, role, prepared
// statements, cursors, advisory locks, LISTENs, temporary tables and a
// custom setting. Tenants cannot read pg_locks (provisioning hides it), so
// the session learns whether it still holds the test's advisory lock by
// releasing it: pg_advisory_unlock is true only for a lock it holds.
const sessionStateSQL = `SELECT pg_backend_pid(),
	current_setting('application_name') || ',' || current_setting('role') || ',' || current_setting('search_path') || ',' || current_setting('TimeZone') || ',' || current_setting('DateStyle'),
	current_user || ',' || session_user,
	(SELECT count(*) FROM pg_prepared_statements),
	(SELECT count(*) FROM pg_cursors),
	CASE WHEN pg_advisory_unlock(424243) THEN 1 ELSE 0 END,
	(SELECT count(*) FROM pg_listening_channels()),
	(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
	coalesce(current_setting('bk.leak', true), '')`

// TestSessionHygieneEveryLeak runs, on a pool of one connection, each way
// a caller can change its session, through each path that runs SQL
// (simple and extended protocol, streamed, batch), and checks that the
// next caller on the same backend sees the session a new one would.
func TestSessionHygieneEveryLeak(t *testing.T) {
	e := setup(t)
	const db = "acct/single"
	clean := e.mustQuery(t, db, sessionStateSQL)
	state := func(r *result) (pid string, rest []string) {
		for c := range len(r.Columns) {
			rest = append(rest, cell(t, r, 0, c))
		}
		return rest[0], rest[1:]
	}
	_, want := state(clean)
	for i, w := range want {
		if i >= 2 && i <= 6 && w != "0" {
			t.Fatalf("a fresh session has state %v: the test would prove nothing", want)
		}
	}
	type dirty struct {
		sql    string
		params []any
	}
	cases := []struct {
		name    string
		sql     string // simple protocol, stream and batch
		ext     *dirty // extended protocol, when the statement can take a parameter
		check   int    // the index in want that sql changes, to prove the leak is real (-1: not visible before commit)
		mayFail bool   // an attempt PostgreSQL refuses
	}{
		{"SET", "SET search_path = nowhere; SET application_name = 'leaked'; SET TIME ZONE 'Asia/Tokyo'; SET DateStyle = 'German'",
			&dirty{"SELECT set_config('search_path', $1, false)", []any{"nowhere"}}, 0, false},
		{"SET ROLE", "SET ROLE " + e.owner, &dirty{"SELECT set_config('role', $1, false)", []any{e.owner}}, 0, false},
		{"SET ROLE refused", "SET ROLE " + e.reader, nil, 1, true},
		{"set_config", "SELECT set_config('bk.leak', 'x', false), set_config('application_name', 'leaked', false)",
			&dirty{"SELECT set_config('bk.leak', $1, false)", []any{"x"}}, 7, false},
		{"CREATE TEMP TABLE", "CREATE TEMP TABLE leak_t (x int)",
			&dirty{"CREATE TEMP TABLE leak_t AS SELECT $1::int AS x", []any{1}}, 6, false},
		{"PREPARE", "PREPARE leak_p AS SELECT 1", nil, 2, false},
		{"DECLARE CURSOR WITH HOLD", "DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1", nil, 3, false},
		{"pg_advisory_lock", "SELECT pg_advisory_lock(424243)",
			&dirty{"SELECT pg_advisory_lock($1)", []any{424243}}, 4, false},
		{"LISTEN", "LISTEN leak_channel", nil, -1, false},
	}
	for _, c := range cases {
		paths := []struct {
			name string
			run  func(t *testing.T) (status int, out []byte)
		}{
			{"simple", func(t *testing.T) (int, []byte) {
				return post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": db, "query_string": c.sql + "; " + sessionStateSQL})
			}},
			{"stream", func(t *testing.T) (int, []byte) {
				return post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": db, "query_string": c.sql},
					"Accept", "application/x-ndjson")
			}},
			{"batch", func(t *testing.T) (int, []byte) {
				return post(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": db,
					"queries": []any{stmt(c.sql), stmt(sessionStateSQL)}})
			}},
		}
		if c.ext != nil {
			paths = append(paths, struct {
				name string
				run  func(t *testing.T) (int, []byte)
			}{"params", func(t *testing.T) (int, []byte) {
				return post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": db, "query_string": c.ext.sql, "params": c.ext.params})
			}})
		}
		for _, p := range paths {
			t.Run(c.name+"/"+p.name, func(t *testing.T) {
				before, _ := state(e.mustQuery(t, db, sessionStateSQL))
				status, out := p.run(t)
				if c.mayFail {
					if status == http.StatusOK {
						t.Fatalf("%q was allowed: %s", c.sql, out)
					}
				} else if status != http.StatusOK {
					t.Fatalf("the dirtying request failed (%d): %s", status, out)
				}
				// The dirtying request saw its own change (where it
				// reports state): the leak it tries is real.
				if (p.name == "simple" || p.name == "batch") && !c.mayFail && !bytes.Contains(out, []byte(before)) {
					t.Fatalf("the dirtying request ran on another backend than %s: %s", before, out)
				}
				if p.name == "simple" && !c.mayFail && c.check >= 0 {
					var r result
					if err := jsonx.Unmarshal(out, &r); err != nil {
						t.Fatal(err)
					}
					if _, dirty := state(&r); dirty[c.check] == want[c.check] {
						t.Fatalf("%q did not change column %d (%s): the test would prove nothing", c.sql, c.check+2, dirty[c.check])
					}
				}
				after, got := state(e.mustQuery(t, db, sessionStateSQL))
				if after != before {
					t.Fatalf("the pool of one connection changed backend (%s → %s): the test would prove nothing", before, after)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("after %q: column %d of the next caller's session = %s, want %s", c.sql, i+1, got[i], want[i])
					}
				}
			})
		}
	}
}

// TestRoundTrips counts what a pool of one connection sends to PostgreSQL
// (one write per round trip): a parameterless query is one write, session
// reset included; a parameterised one is two the first time (describe,
// then execute) and one once its parameter types are cached; a batch's
// reset rides with its COMMIT.
func TestRoundTrips(t *testing.T) {
	e := setup(t)
	const db = "acct/single"
	e.mustQuery(t, db, "SELECT 1") // a warm connection
	marker := fmt.Sprintf("/* %d */", time.Now().UnixNano())
	point := "SELECT name FROM items WHERE id = $1 " + marker
	cases := []struct {
		name   string
		run    func(t *testing.T)
		writes int64
	}{
		{"parameterless", func(t *testing.T) { e.mustQuery(t, db, "SELECT 1") }, 1},
		{"parameterised, first time", func(t *testing.T) { e.mustQuery(t, db, point, 1) }, 2},
		{"parameterised, cached types", func(t *testing.T) { e.mustQuery(t, db, point, 2) }, 1},
		{"batch of two", func(t *testing.T) {
			if status, out := post(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": db,
				"queries": []any{stmt("SELECT 1"), stmt("SELECT 2")}}); status != http.StatusOK {
				t.Fatalf("batch: %d %s", status, out)
			}
		}, 4}, // BEGIN, two statements, COMMIT with the reset
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.signals.Writes.Load()
			c.run(t)
			// The next request waits for the connection, so the release
			// (and any reset it had to send) is over when it starts.
			e.mustQuery(t, db, "SELECT 1")
			if got := e.signals.Writes.Load() - before - 1; got != c.writes {
				t.Errorf("%d writes to PostgreSQL, want %d", got, c.writes)
			}
		})
	}
}
