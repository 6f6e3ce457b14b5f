package fnquery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       Request
		errPart    string // "" for success
	}{
		{"minimal", `{"database":"a/b","query":"select 1"}`, Request{Database: "a/b", Query: "select 1"}, ""},
		{"params keep digits", `{"database":"a/b","query":"select $1","params":[12345678901234567890,"x",null],"data_format":"objects"}`,
			Request{Database: "a/b", Query: "select $1", Params: []any{jsonx.Number("12345678901234567890"), "x", nil}, DataFormat: "objects"}, ""},
		{"empty", "  ", Request{}, "empty body"},
		{"truncated", `{"database":"a/b"`, Request{}, "not a valid query request"},
		{"unknown field", `{"database":"a/b","sql":"select 1"}`, Request{}, `"sql"`},
		{"two values", `{"database":"a/b","query":"select 1"} {}`, Request{}, "more than one JSON value"},
		{"no database", `{"query":"select 1"}`, Request{}, `"database" is missing`},
		{"database without account", `{"database":"b","query":"select 1"}`, Request{}, `not of the form "account/db"`},
		{"no query", `{"database":"a/b","query":"  "}`, Request{}, `"query" is missing`},
		{"bad format", `{"database":"a/b","query":"select 1","data_format":"csv"}`, Request{}, `"csv" is not`},
		{"not an object", `"select 1"`, Request{}, "not a valid query request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, e := Decode([]byte(tc.body))
			if tc.errPart != "" {
				if e == nil || e.Status != http.StatusBadRequest || e.Code != "bad_request" || !strings.Contains(e.Message, tc.errPart) {
					t.Fatalf("Decode = %+v, want a 400 bad_request mentioning %q", e, tc.errPart)
				}
				return
			}
			if e != nil {
				t.Fatalf("Decode: %v", e)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Fatalf("Decode = %#v, want %#v", got, tc.want)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		body := `{"database":"a/b","query":"select '` + strings.Repeat("x", MaxRequestBytes) + `'"}`
		if _, e := Decode([]byte(body)); e == nil || e.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("Decode = %+v, want 413", e)
		}
	})
}

func TestEncode(t *testing.T) {
	t.Parallel()
	res := &core.Result{
		Query:    "select n, s",
		Columns:  []core.Column{{Name: "n", Type: "int8", TypeOID: 20}, {Name: "s", Type: "text", TypeOID: 25}, {Name: "n", Type: "int4", TypeOID: 23}},
		Metadata: map[string]string{"n": "int8", "s": "text"},
		Rows:     [][]any{{jsonx.Number("9223372036854775807"), "a\"b", jsonx.Number("1")}, {nil, map[string]any{"k": []any{true}}, nil}},
		RowCount: 2,
		Command:  "SELECT 2",
	}
	tests := []struct{ format, wantData string }{
		{"", `[[9223372036854775807,"a\"b",1],[null,{"k":[true]},null]]`},
		{"rows", `[[9223372036854775807,"a\"b",1],[null,{"k":[true]},null]]`},
		{"objects", `[{"n":9223372036854775807,"s":"a\"b"},{"n":null,"s":{"k":[true]}}]`},
	}
	for _, tc := range tests {
		t.Run("format="+tc.format, func(t *testing.T) {
			t.Parallel()
			b, err := Encode(res, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			for _, part := range []string{`"data":` + tc.wantData, `"query_string":"select n, s"`, `"row_count":2`, `"command":"SELECT 2"`,
				`"columns":[{"name":"n","type":"int8","type_oid":20},{"name":"s","type":"text","type_oid":25},{"name":"n","type":"int4","type_oid":23}]`} {
				if !strings.Contains(s, part) {
					t.Errorf("Encode = %s\nlacks %s", s, part)
				}
			}
		})
	}
	t.Run("empty result", func(t *testing.T) {
		t.Parallel()
		b, err := Encode(&core.Result{Query: "create table t()", Command: "CREATE TABLE"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); !strings.Contains(s, `"data":[]`) || !strings.Contains(s, `"metadata":{}`) || !strings.Contains(s, `"columns":[]`) {
			t.Fatalf("Encode = %s", s)
		}
	})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	sqlErr := &core.APIError{StatusCode: 400, Code: "sql_error", Message: `relation "x" does not exist`, SQLState: "42P01", Position: 15, RequestID: "r1"}
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"SQL error keeps its fields", fmt.Errorf("query: %w", sqlErr), 400, "sql_error"},
		{"unauthorized", &core.APIError{StatusCode: 401, Code: "unauthorized", Message: "bad key"}, 401, "unauthorized"},
		{"bitd statement timeout", &core.APIError{StatusCode: 400, Code: "query_timeout", Message: "canceling statement"}, 504, "timeout"},
		{"local deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), 504, "timeout"},
		{"bitd 500", &core.APIError{StatusCode: 500, Code: "internal", Message: "boom"}, 502, "internal"},
		{"bitd 503 without body", &core.APIError{StatusCode: 503}, 502, "service_unavailable"},
		{"unreachable", errors.New("dial tcp 127.0.0.1:1: connection refused"), 502, "upstream_unreachable"},
		{"canceled", context.Canceled, 503, "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := Classify(tc.err, 1500*time.Millisecond, "BITKIT_TIMEOUT_MS")
			if e.Status != tc.status || e.Code != tc.code || e.Message == "" {
				t.Fatalf("Classify = %+v, want %d %s", e, tc.status, tc.code)
			}
		})
	}
	e := Classify(sqlErr, time.Second, "x")
	if e.SQLState != "42P01" || e.Position != 15 || e.RequestID != "r1" {
		t.Fatalf("PostgreSQL fields lost: %+v", e)
	}
	if got := string(e.JSON()); got != `{"error":"relation \"x\" does not exist","code":"sql_error","sqlstate":"42P01","position":15,"request_id":"r1"}` {
		t.Fatalf("JSON = %s", got)
	}
	if e := Classify(context.DeadlineExceeded, 1500*time.Millisecond, "BITKIT_TIMEOUT_MS"); !strings.Contains(e.Message, "1.5s (BITKIT_TIMEOUT_MS)") {
		t.Fatalf("timeout message does not name the limit: %s", e.Message)
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	const secret = "sekret-value-123"
	tests := []struct {
		name     string
		env      map[string]string
		password bool
		code     string // "" for success
		names    string // the variable the error must name
	}{
		{"api key", map[string]string{EnvEndpoint: "http://127.0.0.1:1", EnvAPIKey: secret}, false, "", ""},
		{"password", map[string]string{EnvEndpoint: "http://127.0.0.1:1", EnvUsername: "u", EnvPassword: secret}, true, "", ""},
		{"no endpoint", map[string]string{EnvAPIKey: secret}, false, "missing_configuration", EnvEndpoint},
		{"no key", map[string]string{EnvEndpoint: "http://127.0.0.1:1"}, false, "missing_configuration", EnvAPIKey},
		{"password not allowed", map[string]string{EnvEndpoint: "http://127.0.0.1:1", EnvUsername: "u", EnvPassword: secret}, false, "missing_configuration", EnvAPIKey},
		{"username without password", map[string]string{EnvEndpoint: "http://127.0.0.1:1", EnvUsername: "u"}, true, "missing_configuration", EnvPassword},
		{"bad endpoint", map[string]string{EnvEndpoint: "ftp://x", EnvAPIKey: secret}, false, "invalid_configuration", EnvEndpoint},
		{"endpoint with user info", map[string]string{EnvEndpoint: "http://u:" + secret + "@h", EnvAPIKey: "k"}, false, "invalid_configuration", EnvEndpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, e := NewClient(ClientConfig{Getenv: func(k string) string { return tc.env[k] }, AllowPassword: tc.password})
			if tc.code == "" {
				if e != nil || c == nil {
					t.Fatalf("NewClient: %v", e)
				}
				return
			}
			if e == nil || e.Code != tc.code || e.Status != 500 || !strings.Contains(e.Message, tc.names) {
				t.Fatalf("NewClient error = %+v, want %s naming %s", e, tc.code, tc.names)
			}
			if strings.Contains(e.Message, secret) {
				t.Fatalf("the error shows a secret: %s", e.Message)
			}
		})
	}
}

func TestTimeoutFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{{"", 7 * time.Second, true}, {"1500", 1500 * time.Millisecond, true}, {"0", 0, false}, {"-5", 0, false}, {"2s", 0, false}}
	for _, tc := range tests {
		t.Run(tc.v, func(t *testing.T) {
			t.Parallel()
			got, e := TimeoutFromEnv(func(string) string { return tc.v }, 7*time.Second)
			if tc.ok != (e == nil) || got != tc.want {
				t.Fatalf("TimeoutFromEnv(%q) = %v, %v", tc.v, got, e)
			}
			if e != nil && !strings.Contains(e.Message, EnvTimeoutMS) {
				t.Fatalf("error does not name %s: %s", EnvTimeoutMS, e.Message)
			}
		})
	}
}
