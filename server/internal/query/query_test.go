package query_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

func TestEncoding(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cases := []struct {
		name, sql, want, typ string
	}{
		{"int8 max", "SELECT 9223372036854775807::int8", "9223372036854775807", "bigint"},
		{"int8 min", "SELECT (-9223372036854775807 - 1)::int8", "-9223372036854775808", "bigint"},
		{"int2", "SELECT (-32768)::int2", "-32768", "smallint"},
		{"int4", "SELECT 2147483647", "2147483647", "integer"},
		{"oid", "SELECT 4294967295::oid", "4294967295", "oid"},
		{"numeric 40 digits", "SELECT 1234567890123456789012345678901234567890.0123456789::numeric", "1234567890123456789012345678901234567890.0123456789", "numeric"},
		{"numeric trailing zeros", "SELECT 1.500::numeric", "1.500", "numeric"},
		{"numeric NaN", "SELECT 'NaN'::numeric", `"NaN"`, "numeric"},
		{"numeric infinity", "SELECT '-Infinity'::numeric", `"-Infinity"`, "numeric"},
		{"float8", "SELECT 0.1::float8", "0.1", "double precision"},
		{"float8 exponent", "SELECT 1e300::float8", "1e+300", "double precision"},
		{"float8 NaN", "SELECT 'NaN'::float8", `"NaN"`, "double precision"},
		{"float8 infinity", "SELECT 'Infinity'::float8", `"Infinity"`, "double precision"},
		{"float4 -infinity", "SELECT '-Infinity'::float4", `"-Infinity"`, "real"},
		{"float4", "SELECT 1.5::float4", "1.5", "real"},
		{"bool", "SELECT true", "true", "boolean"},
		{"bool false", "SELECT false", "false", "boolean"},
		{"text escapes", `SELECT E'a"b\\c\n\t' || chr(1) || 'é😀'`, `"a\"b\\c\n\t\u0001é😀"`, "text"},
		{"varchar", "SELECT 'x'::varchar(3)", `"x"`, "character varying"},
		{"bytea", `SELECT '\x00ff10'::bytea`, `"AP8Q"`, "bytea"},
		{"bytea empty", `SELECT ''::bytea`, `""`, "bytea"},
		{"bytea escape output", `SET bytea_output = 'escape'; SELECT '\x00ff5c41'::bytea`, `"AP9cQQ=="`, "bytea"},
		{"date", "SELECT '2024-02-29'::date", `"2024-02-29"`, "date"},
		{"date infinity", "SELECT 'infinity'::date", `"infinity"`, "date"},
		{"timestamptz utc", "SELECT '2024-01-02 03:04:05.123456+00'::timestamptz", `"2024-01-02T03:04:05.123456+00:00"`, "timestamp with time zone"},
		{"timestamptz zone", "SET TIME ZONE 'Asia/Kolkata'; SELECT '2024-01-02 03:04:05+00'::timestamptz", `"2024-01-02T08:34:05+05:30"`, "timestamp with time zone"},
		{"timestamptz negative", "SET TIME ZONE 'America/New_York'; SELECT '2024-07-01 12:00:00.5+00'::timestamptz", `"2024-07-01T08:00:00.5-04:00"`, "timestamp with time zone"},
		{"timestamptz lmt", "SET TIME ZONE 'Europe/Amsterdam'; SELECT '1900-01-01 00:00:00+00'::timestamptz", `"1900-01-01T00:00:00Z"`, "timestamp with time zone"},
		{"timestamp", "SELECT '2024-01-02 03:04:05.5'::timestamp", `"2024-01-02T03:04:05.5"`, "timestamp without time zone"},
		{"timestamp BC", "SELECT '0044-03-15 12:00:00 BC'::timestamp", `"0044-03-15 12:00:00 BC"`, "timestamp without time zone"},
		{"time", "SELECT '13:14:15.25'::time", `"13:14:15.25"`, "time without time zone"},
		{"timetz", "SELECT '13:14:15+02'::timetz", `"13:14:15+02"`, "time with time zone"},
		{"interval", "SELECT '1 day 02:00:00'::interval", `"1 day 02:00:00"`, "interval"},
		{"uuid", "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "uuid"},
		{"jsonb", `SELECT '{"b":[1,2.50,null],"a":"x"}'::jsonb`, `{"a": "x", "b": [1, 2.50, null]}`, "jsonb"},
		{"json multi-line", "SELECT E'{\\n  \"a\" : \"x y\",\\n  \"b\": [1, 2]\\n}'::json", `{"a":"x y","b":[1,2]}`, "json"},
		{"json scalar", `SELECT '"s"'::json`, `"s"`, "json"},
		{"int array nulls", "SELECT ARRAY[1,NULL,3]", "[1,null,3]", "integer[]"},
		{"int array 2d", "SELECT ARRAY[[1,2],[3,NULL]]", "[[1,2],[3,null]]", "integer[]"},
		{"int array 3d", "SELECT '{{{1},{2}},{{3},{4}}}'::int[]", "[[[1],[2]],[[3],[4]]]", "integer[]"},
		{"array lower bound", "SELECT '[0:1]={7,8}'::int[]", "[7,8]", "integer[]"},
		{"empty array", "SELECT '{}'::text[]", "[]", "text[]"},
		{"text array specials", `SELECT ARRAY['a b', 'c"d', NULL, 'NULL', '', 'x\y', '{}']`, `["a b","c\"d",null,"NULL","","x\\y","{}"]`, "text[]"},
		{"numeric array", "SELECT ARRAY[1.50, 'NaN']::numeric[]", `[1.50,"NaN"]`, "numeric[]"},
		{"bool array", "SELECT ARRAY[true, false, NULL]", "[true,false,null]", "boolean[]"},
		{"jsonb array", `SELECT ARRAY['{"a": "b,c"}'::jsonb, '[1]']`, `[{"a": "b,c"},[1]]`, "jsonb[]"},
		{"timestamptz array", "SELECT ARRAY['2024-01-02 03:04:05+00'::timestamptz]", `["2024-01-02T03:04:05+00:00"]`, "timestamp with time zone[]"},
		{"bytea array", `SELECT ARRAY['\x01'::bytea, NULL]`, `["AQ==",null]`, "bytea[]"},
		{"box array", "SELECT ARRAY[box '((1,1),(0,0))', box '((2,2),(1,1))']", `["(1,1),(0,0)","(2,2),(1,1)"]`, "box[]"},
		{"null", "SELECT NULL::int", "null", "integer"},
		{"enum", "SELECT 'happy'::mood", `"happy"`, "mood"},
		{"enum array", "SELECT ARRAY['happy', 'sad']::mood[]", `["happy","sad"]`, "mood[]"},
		{"composite", "SELECT ROW(1, 'x y')", `"(1,\"x y\")"`, "record"},
		{"range", "SELECT int4range(1, 5)", `"[1,5)"`, "int4range"},
		{"inet", "SELECT '10.0.0.1/8'::inet", `"10.0.0.1/8"`, "inet"},
		{"money", "SELECT 12.5::money", `"$12.50"`, "money"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := e.mustQuery(t, "acct/owner", c.sql)
			if got := cell(t, r, 0, 0); got != c.want {
				t.Errorf("%s = %s, want %s", c.sql, got, c.want)
			}
			if len(r.Columns) != 1 || r.Columns[0].Type != c.typ {
				t.Errorf("columns = %+v, want one of type %q", r.Columns, c.typ)
			}
			if r.Metadata[r.Columns[0].Name] != c.typ {
				t.Errorf("metadata = %v, want type %q", r.Metadata, c.typ)
			}
			if r.RowCount != 1 || r.Command != "SELECT" {
				t.Errorf("row_count %d command %q, want 1 SELECT", r.RowCount, r.Command)
			}
		})
	}
}

func TestParams(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cases := []struct {
		name  string
		sql   string
		param any
		want  string
	}{
		{"int8 max", "SELECT $1::int8", jsonx.Number("9223372036854775807"), "9223372036854775807"},
		{"int8 from string", "SELECT $1::int8", "-9223372036854775808", "-9223372036854775808"},
		{"int4", "SELECT $1::int4 + 1", jsonx.Number("41"), "42"},
		{"numeric exact", "SELECT $1::numeric", jsonx.Number("1234567890123456789012345678901234567890.0123456789"), "1234567890123456789012345678901234567890.0123456789"},
		{"numeric NaN", "SELECT $1::numeric", "NaN", `"NaN"`},
		{"float8", "SELECT $1::float8", jsonx.Number("0.1"), "0.1"},
		{"float8 exponent", "SELECT $1::float8", jsonx.Number("1e300"), "1e+300"},
		{"text", "SELECT $1::text", "héllo \"w\"", `"héllo \"w\""`},
		{"bool", "SELECT $1::bool", true, "true"},
		{"bool false", "SELECT NOT $1::bool", false, "true"},
		{"jsonb object", "SELECT $1::jsonb -> 'a'", map[string]any{"a": []any{1, "x"}}, `[1, "x"]`},
		{"jsonb from string", "SELECT $1::jsonb", `{"k": 1}`, `{"k": 1}`},
		{"json", "SELECT $1::json", []any{1, 2}, `[1,2]`},
		{"int array", "SELECT $1::int[]", []any{1, nil, 3}, "[1,null,3]"},
		{"int array 2d", "SELECT $1::int[]", []any{[]any{1, 2}, []any{3, 4}}, "[[1,2],[3,4]]"},
		{"text array", "SELECT $1::text[]", []any{`a"b`, `c\d`, nil, "NULL", "x,y"}, `["a\"b","c\\d",null,"NULL","x,y"]`},
		{"jsonb array", "SELECT $1::jsonb[]", []any{map[string]any{"a": 1}, []any{1}}, `[{"a": 1},[1]]`},
		{"bytea base64", "SELECT $1::bytea", "AP8Q", `"AP8Q"`},
		{"uuid", "SELECT $1::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"date", "SELECT $1::date", "2024-02-29", `"2024-02-29"`},
		{"timestamptz", "SELECT $1::timestamptz", "2024-01-02T03:04:05.123456+02:00", `"2024-01-02T01:04:05.123456+00:00"`},
		{"timestamp", "SELECT $1::timestamp", "2024-01-02 03:04:05", `"2024-01-02T03:04:05"`},
		{"null", "SELECT $1::int IS NULL", nil, "true"},
		{"enum", "SELECT $1::mood", "sad", `"sad"`},
		{"enum array", "SELECT $1::mood[]", []any{"happy", "sad"}, `["happy","sad"]`},
		{"interval", "SELECT $1::interval", "1 day", `"1 day"`},
		{"injection stays data", "SELECT $1::text", "'); DROP TABLE items; --", `"'); DROP TABLE items; --"`},
		{"injection in where", "SELECT count(*) FROM items WHERE name = $1", "one' OR '1'='1", "0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := e.mustQuery(t, "acct/owner", c.sql, c.param)
			if got := cell(t, r, 0, 0); got != c.want {
				t.Errorf("%s with %v = %s, want %s", c.sql, c.param, got, c.want)
			}
		})
	}
	t.Run("table survives injection", func(t *testing.T) {
		t.Parallel()
		r := e.mustQuery(t, "acct/owner", "SELECT count(*) FROM items WHERE id = $1", "1")
		if got := cell(t, r, 0, 0); got != "1" {
			t.Errorf("count = %s", got)
		}
	})
	bad := []struct {
		name   string
		sql    string
		params []any
		field  string
		msg    string
	}{
		{"not an integer", "SELECT $1::int", []any{"abc"}, "$1", "integer"},
		{"int4 out of range", "SELECT $1::text, $2::int4", []any{"x", jsonx.Number("2147483648")}, "$2", "out of range"},
		{"fraction for int", "SELECT $1::int8", []any{jsonx.Number("1.5")}, "$1", "bigint"},
		{"object for int", "SELECT $1::int", []any{map[string]any{"a": 1}}, "$1", "integer"},
		{"array for text", "SELECT $1::text", []any{[]any{1}}, "$1", "array"},
		{"bad bool", "SELECT $1::bool", []any{"maybe"}, "$1", "boolean"},
		{"bad uuid", "SELECT $1::uuid", []any{"nope"}, "$1", "uuid"},
		{"bad base64", "SELECT $1::bytea", []any{"!!"}, "$1", "base64"},
		{"too many", "SELECT $1::int", []any{1, 2}, "params", "1 parameter"},
		{"too few", "SELECT $1::int, $2::int", []any{1}, "params", "2 parameter"},
	}
	for _, c := range bad {
		t.Run("bad "+c.name, func(t *testing.T) {
			t.Parallel()
			er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": c.sql, "params": c.params}, http.StatusBadRequest)
			if er.Code != "invalid_parameter" || er.Field != c.field || !strings.Contains(er.Error, c.msg) {
				t.Errorf("error = %+v, want invalid_parameter on %s mentioning %q", er, c.field, c.msg)
			}
		})
	}
}

func TestMultiStatementAndObjects(t *testing.T) {
	t.Parallel()
	e := setup(t)
	t.Run("last result", func(t *testing.T) {
		t.Parallel()
		r := e.mustQuery(t, "acct/owner", "CREATE TEMP TABLE ms(x int); INSERT INTO ms VALUES (1),(2),(3); SELECT x * 10 AS v FROM ms ORDER BY x")
		if r.Command != "SELECT" || r.RowCount != 3 || len(r.Data) != 3 || cell(t, r, 2, 0) != "30" || r.Columns[0].Name != "v" {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("last is a write", func(t *testing.T) {
		t.Parallel()
		r := e.mustQuery(t, "acct/owner", "CREATE TEMP TABLE mw(x int); SELECT 1; INSERT INTO mw SELECT generate_series(1, 4)")
		if r.Command != "INSERT" || r.RowCount != 4 || len(r.Data) != 0 || len(r.Columns) != 0 {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("error in later statement", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT 1; SELECT 1/0"}, http.StatusBadRequest)
		if er.Code != "sql_error" || er.SQLState != "22012" {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("objects with duplicate names", func(t *testing.T) {
		t.Parallel()
		for _, where := range []string{"query", "body"} {
			body := map[string]any{"database_name": "acct/owner", "query_string": "SELECT 1 AS a, 2 AS a, 3 AS a_2, NULL::text AS b"}
			path := "/v2beta/query"
			if where == "query" {
				path += "?data_format=objects"
			} else {
				body["data_format"] = "objects"
			}
			status, out := post(t, e.srv.URL, path, body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, out)
			}
			var r struct {
				Data     []map[string]jsonx.RawMessage `json:"data"`
				Metadata map[string]string             `json:"metadata"`
			}
			if err := jsonx.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			row := r.Data[0]
			if len(row) != 4 || string(row["a"]) != "1" || string(row["a_3"]) != "2" || string(row["a_2"]) != "3" || string(row["b"]) != "null" {
				t.Errorf("%s: row = %v", where, row)
			}
			if r.Metadata["a_3"] != "integer" || r.Metadata["b"] != "text" {
				t.Errorf("metadata = %v", r.Metadata)
			}
		}
	})
	t.Run("bad data format", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query?data_format=xml", map[string]any{"database_name": "acct/owner", "query_string": "SELECT 1"}, http.StatusBadRequest)
		if er.Code != "invalid_data_format" {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("unknown database", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/nope", "query_string": "SELECT 1"}, http.StatusNotFound)
		if er.Code != "not_found" {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("NUL in query", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT 1\u0000"}, http.StatusBadRequest)
		if er.Field != "query_string" || !strings.Contains(er.Error, "NUL") {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("empty query", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "  "}, http.StatusBadRequest)
		if er.Field != "query_string" {
			t.Errorf("error = %+v", er)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	t.Run("row cap", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.limited.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner",
			"query_string": "SELECT generate_series(1, 500000000) /* rowcap-marker */"}, http.StatusRequestEntityTooLarge)
		if er.Code != "result_too_large" || !strings.Contains(er.Error, "1000 rows") || !strings.Contains(er.Error, "application/x-ndjson") || !strings.Contains(er.Error, "export") {
			t.Errorf("error = %+v", er)
		}
		e.waitNoActive(t, "rowcap-marker")
	})
	t.Run("byte cap", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.limited.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner",
			"query_string": "SELECT repeat('x', 1000) FROM generate_series(1, 500)"}, http.StatusRequestEntityTooLarge)
		if er.Code != "result_too_large" || !strings.Contains(er.Error, "65536 bytes") {
			t.Errorf("error = %+v", er)
		}
	})
	t.Run("under the caps", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.limited.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT generate_series(1, 1000)"})
		if status != http.StatusOK || !strings.Contains(string(out), `"row_count":1000`) {
			t.Errorf("status %d: %.200s", status, out)
		}
	})
	for _, c := range []struct{ name, sql string }{
		{"timeout", "SELECT pg_sleep(60) /* timeout-marker-1 */"},
		{"timeout despite statement_timeout 0", "SET statement_timeout = 0; SELECT pg_sleep(60) /* timeout-marker-2 */"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": c.sql, "timeout_ms": 500}, http.StatusRequestTimeout)
			if er.Code != "query_timeout" || !strings.Contains(er.Error, "500ms") || !strings.Contains(er.Error, "timeout_ms") {
				t.Errorf("error = %+v", er)
			}
			e.waitNoActive(t, c.sql[len(c.sql)-20:])
		})
	}
	t.Run("timeout with params", func(t *testing.T) {
		t.Parallel()
		er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner",
			"query_string": "SELECT pg_sleep($1) /* timeout-marker-3 */", "params": []any{60}, "timeout_ms": 300}, http.StatusRequestTimeout)
		if er.Code != "query_timeout" {
			t.Errorf("error = %+v", er)
		}
		e.waitNoActive(t, "timeout-marker-3")
	})
}

// readStream reads an NDJSON answer into its lines.
func readStream(t *testing.T, body []byte) []map[string]jsonx.RawMessage {
	t.Helper()
	var lines []map[string]jsonx.RawMessage
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]jsonx.RawMessage
		if strings.HasPrefix(sc.Text(), "[") {
			m = map[string]jsonx.RawMessage{"row": jsonx.RawMessage(sc.Text())}
		} else if err := jsonx.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestStream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ndjson := []string{"Accept", "application/x-ndjson"}
	t.Run("rows", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner",
			"query_string": "SELECT g, 'r' || g AS s, ARRAY[g, NULL] AS a FROM generate_series(1, 20000) g"}, ndjson...)
		if status != http.StatusOK {
			t.Fatalf("status %d: %.300s", status, out)
		}
		lines := readStream(t, out)
		if len(lines) != 20002 {
			t.Fatalf("%d lines", len(lines))
		}
		if !strings.Contains(string(lines[0]["columns"]), `"name":"g","type":"integer","type_oid":23`) || !strings.Contains(string(lines[0]["metadata"]), `"a":"integer[]"`) {
			t.Errorf("header = %v", lines[0])
		}
		if got := string(lines[20000]["row"]); got != `[20000,"r20000",[20000,null]]` {
			t.Errorf("last row = %s", got)
		}
		if string(lines[20001]["row_count"]) != "20000" || string(lines[20001]["command"]) != `"SELECT"` {
			t.Errorf("trailer = %v", lines[20001])
		}
	})
	t.Run("objects", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.srv.URL, "/v2beta/query?data_format=objects", map[string]any{"database_name": "acct/owner",
			"query_string": "SELECT $1::int8 AS n", "params": []any{jsonx.Number("9223372036854775807")}}, ndjson...)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, out)
		}
		lines := readStream(t, out)
		if len(lines) != 3 || string(lines[1]["n"]) != "9223372036854775807" || string(lines[2]["row_count"]) != "1" {
			t.Errorf("lines = %v", lines)
		}
	})
	t.Run("write statement", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner",
			"query_string": "CREATE TEMP TABLE sw(x int); INSERT INTO sw SELECT generate_series(1, 3)"}, ndjson...)
		lines := readStream(t, out)
		if status != http.StatusOK || len(lines) != 2 || string(lines[0]["columns"]) != "[]" || string(lines[1]["row_count"]) != "3" || string(lines[1]["command"]) != `"INSERT"` {
			t.Errorf("status %d lines %v", status, lines)
		}
	})
	t.Run("error before rows is a plain error", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT nope"}, ndjson...)
		if status != http.StatusBadRequest || !strings.Contains(string(out), `"sqlstate":"42703"`) {
			t.Errorf("status %d: %s", status, out)
		}
	})
	t.Run("error mid-stream ends with an error line", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner",
			"query_string": "SELECT g, repeat('x', 200), 1 / (g - 5000) FROM generate_series(1, 10000) g"}, ndjson...)
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		lines := readStream(t, out)
		last := lines[len(lines)-1]
		var er apiError
		if err := jsonx.Unmarshal(last["error"], &er); err != nil || er.SQLState != "22012" || er.Code != "sql_error" {
			t.Errorf("last line = %v (%v)", last, err)
		}
		if _, ok := last["row_count"]; ok {
			t.Error("a failed stream has a row_count trailer")
		}
	})
	t.Run("two row results", func(t *testing.T) {
		t.Parallel()
		status, out := post(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/owner", "query_string": "SELECT 1; SELECT 2"}, ndjson...)
		if status != http.StatusBadRequest || !strings.Contains(string(out), "multiple_result_sets") {
			t.Errorf("status %d: %s", status, out)
		}
	})
	t.Run("client disconnect cancels the query", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/v2beta/query",
			strings.NewReader(`{"database_name":"acct/owner","query_string":"SELECT generate_series(1, 2000000000) /* disconnect-marker */"}`))
		req.Header.Set("Accept", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for range 1000 {
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.adminQuery(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%disconnect-marker%' AND pid <> pg_backend_pid()`, e.db); n != 1 {
			t.Fatalf("%d backends run the streamed query before the disconnect, want 1", n)
		}
		cancel()
		resp.Body.Close()
		e.waitNoActive(t, "disconnect-marker")
	})
}

// TestUsageRecorded checks that every returned row is counted once, also
// when many queries finish at the same time (counts are coalesced).
func TestUsageRecorded(t *testing.T) {
	e := setup(t)
	e.handler.FlushUsage()
	before := e.usage.get("id-" + e.db)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { e.mustQuery(t, "acct/reader", "SELECT generate_series(1, 7)") })
	}
	wg.Wait()
	e.handler.FlushUsage()
	if got := e.usage.get("id-"+e.db) - before; got != 140 {
		t.Errorf("rows queried grew by %d, want 140", got)
	}
}

func TestCopy(t *testing.T) {
	e := setup(t)
	er := failQuery(t, e.srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/single",
		"query_string": "INSERT INTO items VALUES (77, 'seventy-seven'); COPY items FROM STDIN"}, http.StatusBadRequest)
	if er.Code != "copy_from_stdin_not_supported" || !strings.Contains(er.Error, "import job") {
		t.Errorf("error = %+v", er)
	}
	r := e.mustQuery(t, "acct/single", "SELECT count(*) FROM items WHERE id = 77")
	if got := cell(t, r, 0, 0); got != "0" {
		t.Errorf("the statement before the refused COPY was kept (%s rows)", got)
	}
	r = e.mustQuery(t, "acct/single", "COPY (SELECT 1) TO STDOUT")
	if r.Command != "COPY" || r.RowCount != 1 {
		t.Errorf("COPY TO STDOUT = %+v", r)
	}
}
