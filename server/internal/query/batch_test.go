package query_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

func stmt(sql string, params ...any) map[string]any {
	m := map[string]any{"query_string": sql}
	if params != nil {
		m["params"] = params
	}
	return m
}

func TestBatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mustQuery(t, "acct/owner", "CREATE TABLE batch_t (id int PRIMARY KEY, v text)")
	t.Run("all or nothing", func(t *testing.T) {
		er := failQuery(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": "acct/writer", "queries": []any{
			stmt("INSERT INTO batch_t VALUES (1, 'a')"),
			stmt("INSERT INTO batch_t VALUES ($1, $2)", 2, "b"),
			stmt("SELECT 1 / 0"),
			stmt("INSERT INTO batch_t VALUES (4, 'd')"),
			stmt("SELECT 5"),
		}}, http.StatusBadRequest)
		if er.Index == nil || *er.Index != 2 || er.SQLState != "22012" || !strings.Contains(er.Error, "statement 2") {
			t.Errorf("error = %+v", er)
		}
		if n := e.adminQuery(t, "SELECT count(*) FROM batch_t"); n != 0 {
			t.Errorf("%d rows committed by a failed batch", n)
		}
	})
	t.Run("success", func(t *testing.T) {
		status, out := post(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": "acct/writer", "isolation_level": "Repeatable  Read", "queries": []any{
			stmt("INSERT INTO batch_t VALUES (10, 'x'), (11, 'y')"),
			stmt("UPDATE batch_t SET v = $1 WHERE id = $2", "z", 11),
			stmt("SELECT id, v FROM batch_t WHERE id >= 10 ORDER BY id"),
			stmt("SELECT current_setting('transaction_isolation')"),
		}})
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, out)
		}
		var r struct{ Results []result }
		if err := jsonx.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Results) != 4 || r.Results[0].Command != "INSERT" || r.Results[0].RowCount != 2 || r.Results[1].RowCount != 1 ||
			string(r.Results[2].Data[1]) != `[11,"z"]` || string(r.Results[3].Data[0]) != `["repeatable read"]` {
			t.Errorf("results = %s", out)
		}
		if n := e.adminQuery(t, "SELECT count(*) FROM batch_t WHERE id >= 10"); n != 2 {
			t.Errorf("%d rows committed, want 2", n)
		}
	})
	t.Run("read only", func(t *testing.T) {
		for _, first := range []string{"INSERT INTO batch_t VALUES (20, 'r')", "SET TRANSACTION READ WRITE"} {
			er := failQuery(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": "acct/writer", "read_only": true, "queries": []any{
				stmt(first), stmt("INSERT INTO batch_t VALUES (21, 'r')"),
			}}, http.StatusBadRequest)
			if er.Index == nil || *er.Index != 0 || (er.SQLState != "25006" && er.SQLState != "25001") {
				t.Errorf("%s: error = %+v", first, er)
			}
		}
		if n := e.adminQuery(t, "SELECT count(*) FROM batch_t WHERE id >= 20"); n != 0 {
			t.Errorf("read-only batch wrote %d rows", n)
		}
	})
	t.Run("bad isolation level", func(t *testing.T) {
		er := failQuery(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": "acct/writer", "isolation_level": "chaos",
			"queries": []any{stmt("SELECT 1")}}, http.StatusBadRequest)
		if er.Field != "isolation_level" {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("transaction control refused", func(t *testing.T) {
		er := failQuery(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": "acct/writer",
			"queries": []any{stmt("SELECT 1"), stmt("ROLLBACK")}}, http.StatusBadRequest)
		if er.Code != "transaction_control_in_batch" || er.Index == nil || *er.Index != 1 {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("no queries", func(t *testing.T) {
		er := failQuery(t, e.srv.URL, "/v2beta/query/batch", map[string]any{"database_name": "acct/writer", "queries": []any{}}, http.StatusBadRequest)
		if er.Field != "queries" {
			t.Errorf("error = %+v", er)
		}
	})
}

// TestSessionHygiene runs requests on a pool of one connection: whatever a
// request does to its session must not be visible to the next one.
func TestSessionHygiene(t *testing.T) {
	e := setup(t)
	pid := func(r *result) string { return cell(t, r, 0, 0) }
	cases := []struct {
		name, dirty, check, want string
	}{
		{"SET", "SET application_name = 'leaked'; SET search_path = nowhere; SELECT pg_backend_pid()",
			"SELECT pg_backend_pid(), current_setting('application_name') || ',' || current_setting('search_path')", `"bitd,\"$user\", public"`},
		{"temp table", "CREATE TEMP TABLE leak_t(x int); SELECT pg_backend_pid()",
			"SELECT pg_backend_pid(), to_regclass('pg_temp.leak_t') IS NULL", "true"},
		{"prepared statement", "PREPARE leak_p AS SELECT 1; SELECT pg_backend_pid()",
			"SELECT pg_backend_pid(), count(*) FROM pg_prepared_statements", "0"},
		{"advisory lock", "SELECT pg_backend_pid(), pg_advisory_lock(424242)",
			"SELECT pg_backend_pid(), pg_advisory_unlock(424242)", "false"}, // true only if the session still held it
		{"role setting", "SET ROLE NONE; SET TIME ZONE 'Asia/Tokyo'; SELECT pg_backend_pid()",
			"SELECT pg_backend_pid(), current_setting('TimeZone')", `"UTC"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := pid(e.mustQuery(t, "acct/single", c.dirty))
			r := e.mustQuery(t, "acct/single", c.check)
			if pid(r) != before {
				t.Fatalf("the pool of one connection changed backend (%s → %s): the test would prove nothing", before, pid(r))
			}
			if got := cell(t, r, 0, 1); got != c.want {
				t.Errorf("after %q: %s = %s, want %s", c.dirty, c.check, got, c.want)
			}
		})
	}
	t.Run("open transaction", func(t *testing.T) {
		before := pid(e.mustQuery(t, "acct/single", "BEGIN; CREATE TABLE leak_tx(x int); SELECT pg_backend_pid()"))
		r := e.mustQuery(t, "acct/single", "SELECT pg_backend_pid(), to_regclass('public.leak_tx') IS NULL")
		if cell(t, r, 0, 1) != "true" {
			t.Error("an uncommitted transaction leaked into the next request")
		}
		if pid(r) == before {
			t.Error("a connection left inside a transaction went back to the pool")
		}
	})
}

// TestOwnerCannotEscalate checks that the owner role, the strongest a
// caller gets, cannot become anything else or reach the server's files.
func TestOwnerCannotEscalate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cases := []struct{ name, sql string }{
		{"set role admin", "SET ROLE bitkit"},
		{"set role writer", fmt.Sprintf("SET ROLE %s", e.writer)},
		{"set session authorization", "SET SESSION AUTHORIZATION bitkit"},
		{"copy to program", "COPY (SELECT 1) TO PROGRAM 'id'"},
		{"copy from file", "CREATE TEMP TABLE f(x text); COPY f FROM '/etc/passwd'"},
		{"pg_read_file", "SELECT pg_read_file('/etc/passwd')"},
		{"create extension dblink", "CREATE EXTENSION dblink"},
		{"alter role superuser", fmt.Sprintf("ALTER ROLE %s SUPERUSER", e.owner)},
		{"create role", "CREATE ROLE qt_escalate"},
		{"other database", "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": c.sql}, http.StatusBadRequest)
			want := "42501" // insufficient_privilege
			if c.name == "other database" {
				want = "42883" // dblink() does not exist: the extension could not be created
			}
			if c.name == "create extension dblink" && (er.SQLState == "58P01" || er.SQLState == "0A000") {
				return // contrib not installed on this cluster: it fails all the same
			}
			if er.SQLState != want {
				t.Errorf("%s: error %+v, want SQLSTATE %s", c.sql, er, want)
			}
		})
	}
	t.Run("reset role stays owner", func(t *testing.T) {
		t.Parallel()
		r := e.mustQuery(t, "acct/owner", "RESET ROLE; SELECT current_user::text, session_user::text")
		if want := fmt.Sprintf(`["%s","%s"]`, e.owner, e.owner); string(r.Data[0]) != want {
			t.Errorf("got %s, want %s", r.Data[0], want)
		}
	})
	t.Run("reader cannot write", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/reader", "query_string": "INSERT INTO items VALUES (9, 'nine')"}, http.StatusBadRequest)
		if er.Code != "permission_denied" || er.SQLState != "42501" {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("reader reads", func(t *testing.T) {
		t.Parallel()
		r := e.mustQuery(t, "acct/reader", "SELECT name FROM items ORDER BY id")
		if len(r.Data) != 2 || string(r.Data[0]) != `["one"]` {
			t.Errorf("data = %s", r.Data)
		}
	})
}
