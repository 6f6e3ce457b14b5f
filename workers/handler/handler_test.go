package handler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
)

// answer is what a test reads back from the handler.
type answer struct {
	status int
	header http.Header
	body   string
	m      map[string]any
}

func serve(t *testing.T, env map[string]string, rt core.Fetcher, method, path, body, auth string) answer {
	t.Helper()
	h := New(Config{Getenv: func(k string) string { return env[k] }, Fetcher: rt})
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	a := answer{status: rec.Code, header: rec.Header(), body: string(b)}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%d, Content-Type %q: %s", rec.Code, ct, b)
	}
	if err := json.Unmarshal(b, &a.m); err != nil {
		t.Fatalf("the answer is not a JSON object (%v): %s", err, b)
	}
	for _, secret := range []string{"key-123", "tok-9"} {
		if strings.Contains(a.body, secret) {
			t.Fatalf("the answer shows a secret: %s", b)
		}
	}
	return a
}

// withEnv returns base with extra applied; an empty value in extra removes
// the variable.
func withEnv(base, extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// These tests cover what the handler decides before any request to bitd;
// the full path (bitd, SQL errors, timeouts) runs in workerd in
// workers/workerdtest.
func TestHandlerLocalAnswers(t *testing.T) {
	t.Parallel()
	noNetwork := core.FetcherFunc(func(_ context.Context, r *core.Request) (*core.Response, error) {
		t.Errorf("unexpected request to %s", r.URL)
		return nil, errors.New("no network in this test")
	})
	// full is a complete configuration, caller token included; bearer is
	// what a caller who knows the token sends.
	full := map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_API_KEY": "key-123", EnvWorkerToken: "tok-9"}
	const bearer = "Bearer tok-9"
	with := func(extra map[string]string) map[string]string { return withEnv(full, extra) }
	noToken := with(map[string]string{EnvWorkerToken: ""})
	const good = `{"database":"a/b","query":"select 1"}`
	tests := []struct {
		name, method, path, body, auth string
		env                            map[string]string
		status                         int
		code                           string
	}{
		{"healthz", "GET", "/healthz", "", "", full, 200, ""},
		{"healthz without a token", "GET", "/healthz", "", "", noToken, 200, ""},
		{"healthz with a bad public var", "GET", "/healthz", "", "", with(map[string]string{EnvWorkerPublic: "yes"}), 200, ""},
		{"unknown path", "GET", "/nope", "", "", full, 404, "not_found"},
		{"GET /query", "GET", "/query", "", "", full, 405, "method_not_allowed"},
		{"bad JSON", "POST", "/query", `{"database":`, bearer, full, 400, "bad_request"},
		{"missing API key", "POST", "/query", good, bearer, with(map[string]string{"BITKIT_API_KEY": ""}), 500, "missing_configuration"},
		{"missing endpoint", "POST", "/query", good, bearer, with(map[string]string{"BITKIT_ENDPOINT": ""}), 500, "missing_configuration"},
		{"bad timeout", "POST", "/query", good, bearer, with(map[string]string{"BITKIT_TIMEOUT_MS": "soon"}), 500, "invalid_configuration"},

		// Transactions: what is refused before calling bitd.
		{"begin bad JSON", "POST", "/tx", `{"database":`, bearer, full, 400, "bad_request"},
		{"begin unknown field", "POST", "/tx", `{"database":"a/b","isolation":"serializable"}`, bearer, full, 400, "bad_request"},
		{"begin bad isolation level", "POST", "/tx", `{"database":"a/b","isolation_level":"chaos"}`, bearer, full, 400, "bad_request"},
		{"begin without a database", "POST", "/tx", `{}`, bearer, full, 400, "bad_request"},
		{"begin negative idle timeout", "POST", "/tx", `{"database":"a/b","idle_timeout_ms":-1}`, bearer, full, 400, "bad_request"},
		{"begin without the caller token", "POST", "/tx", `{"database":"a/b"}`, "", full, 401, "unauthorized"},
		{"commit without the caller token", "POST", "/tx/abc/commit", "", "", full, 401, "unauthorized"},
		{"rollback without the caller token", "POST", "/tx/abc/rollback", "", "", full, 401, "unauthorized"},
		{"GET of a commit", "GET", "/tx/abc/commit", "", bearer, full, 404, "not_found"},
		// username/password needs a token cache (the Worker: KV).
		{"password without a token cache", "POST", "/query", good, bearer,
			with(map[string]string{"BITKIT_API_KEY": "", "BITKIT_USERNAME": "u", "BITKIT_PASSWORD": "p"}), 500, "invalid_configuration"},

		// Token set: unchanged behaviour.
		{"caller token missing", "POST", "/query", good, "", full, 401, "unauthorized"},
		{"caller token wrong", "POST", "/query", good, "Bearer tok-8", full, 401, "unauthorized"},
		{"caller token longer", "POST", "/query", good, "Bearer tok-99", full, 401, "unauthorized"},
		{"caller token empty", "POST", "/query", good, "Bearer ", full, 401, "unauthorized"},
		{"caller token other scheme", "POST", "/query", good, "Basic tok-9", full, 401, "unauthorized"},
		{"caller token set wins over public", "POST", "/query", good, "", with(map[string]string{EnvWorkerPublic: "true"}), 401, "unauthorized"},
		{"caller token set, public false", "POST", "/query", good, "", with(map[string]string{EnvWorkerPublic: "false"}), 401, "unauthorized"},

		// Token unset: closed unless BITKIT_WORKER_PUBLIC = "true".
		{"token unset", "POST", "/query", good, "", noToken, 500, "worker_token_missing"},
		{"token unset, caller sends one", "POST", "/query", good, bearer, noToken, 500, "worker_token_missing"},
		{"token unset, public false", "POST", "/query", good, "", with(map[string]string{EnvWorkerToken: "", EnvWorkerPublic: "false"}), 500, "worker_token_missing"},
		{"token unset before bad JSON", "POST", "/query", `{"database":`, "", noToken, 500, "worker_token_missing"},
		{"public reaches the body check", "POST", "/query", `{"database":`, "", with(map[string]string{EnvWorkerToken: "", EnvWorkerPublic: "true"}), 400, "bad_request"},

		// Any other BITKIT_WORKER_PUBLIC is a configuration error, token or not.
		{"public yes", "POST", "/query", good, "", with(map[string]string{EnvWorkerToken: "", EnvWorkerPublic: "yes"}), 500, "invalid_configuration"},
		{"public TRUE", "POST", "/query", good, "", with(map[string]string{EnvWorkerToken: "", EnvWorkerPublic: "TRUE"}), 500, "invalid_configuration"},
		{"public 1", "POST", "/query", good, "", with(map[string]string{EnvWorkerToken: "", EnvWorkerPublic: "1"}), 500, "invalid_configuration"},
		{"public padded", "POST", "/query", good, "", with(map[string]string{EnvWorkerToken: "", EnvWorkerPublic: " true"}), 500, "invalid_configuration"},
		{"public bad with token", "POST", "/query", good, bearer, with(map[string]string{EnvWorkerPublic: "tok-9"}), 500, "invalid_configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := serve(t, tc.env, noNetwork, tc.method, tc.path, tc.body, tc.auth)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.code != "" && a.m["code"] != tc.code {
				t.Fatalf("code %v, want %s: %s", a.m["code"], tc.code, a.body)
			}
			msg, _ := a.m["error"].(string)
			switch tc.code {
			case "unauthorized":
				if a.header.Get("WWW-Authenticate") != `Bearer realm="bitkit-worker"` {
					t.Errorf("WWW-Authenticate = %q", a.header.Get("WWW-Authenticate"))
				}
				if !strings.Contains(msg, "Authorization: Bearer") || !strings.Contains(msg, EnvWorkerToken) {
					t.Errorf("the 401 does not say what to send: %s", msg)
				}
			case "worker_token_missing":
				// The operator is told exactly what to do, both ways.
				for _, want := range []string{
					"wrangler secret put BITKIT_WORKER_TOKEN",
					"Authorization: Bearer <token>",
					`BITKIT_WORKER_PUBLIC = "true"`,
					"wrangler.toml",
				} {
					if !strings.Contains(msg, want) {
						t.Errorf("message lacks %q: %s", want, msg)
					}
				}
			case "invalid_configuration":
				if tc.env[EnvWorkerPublic] != "" && !strings.Contains(msg, EnvWorkerPublic) {
					t.Errorf("message does not name %s: %s", EnvWorkerPublic, msg)
				}
			}
			if tc.code != "unauthorized" && a.header.Get("WWW-Authenticate") != "" {
				t.Errorf("WWW-Authenticate on a %d", a.status)
			}
		})
	}
}

// TestHandlerAuthorizedReachesBitd checks that an authorized request goes
// through to bitd (here a transport that records it) with the Worker's API
// key, never the caller's token: with the right bearer token, and with no
// token at all when the operator opted in with BITKIT_WORKER_PUBLIC.
func TestHandlerAuthorizedReachesBitd(t *testing.T) {
	t.Parallel()
	base := map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_API_KEY": "key-123"}
	tests := []struct {
		name string
		env  map[string]string
		auth string
	}{
		{"right bearer token", withEnv(base, map[string]string{EnvWorkerToken: "tok-9"}), "Bearer tok-9"},
		{"right bearer token, public false", withEnv(base, map[string]string{EnvWorkerToken: "tok-9", EnvWorkerPublic: "false"}), "Bearer tok-9"},
		{"right bearer token, public true", withEnv(base, map[string]string{EnvWorkerToken: "tok-9", EnvWorkerPublic: "true"}), "Bearer tok-9"},
		{"public, anonymous", withEnv(base, map[string]string{EnvWorkerPublic: "true"}), ""},
		{"public, caller sends some token", withEnv(base, map[string]string{EnvWorkerPublic: "true"}), "Bearer whatever"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls int
			var sawKey string
			rt := core.FetcherFunc(func(_ context.Context, r *core.Request) (*core.Response, error) {
				calls++
				sawKey = r.Header.Get("Authorization")
				return &core.Response{StatusCode: 200, Header: core.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(strings.NewReader(`{"query_string":"select 1","metadata":{"x":"integer"},"columns":[{"name":"x","type":"integer","type_oid":23}],"data":[[1]],"row_count":1,"command":"SELECT 1"}`))}, nil
			})
			a := serve(t, tc.env, rt, "POST", "/query", `{"database":"a/b","query":"select 1"}`, tc.auth)
			if a.status != 200 || !strings.Contains(a.body, `"data":[[1]]`) {
				t.Fatalf("%d: %s", a.status, a.body)
			}
			if calls != 1 || sawKey != "Bearer key-123" {
				t.Fatalf("bitd saw %d request(s), Authorization %q; want 1 with the API key (not the caller's token)", calls, sawKey)
			}
		})
	}
}

// TestHandlerTokenCacheMissing: with BITKIT_USERNAME set and no KV binding,
// the answer names the binding and how to add it, never the password.
func TestHandlerTokenCacheMissing(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_USERNAME": "u", "BITKIT_PASSWORD": "pw-secret-1", EnvWorkerToken: "tok-9"}
	h := New(Config{Getenv: func(k string) string { return env[k] },
		TokenCache: func() (core.TokenCache, error) { return nil, errors.New("BITKIT_TOKEN_KV is undefined") }})
	req := httptest.NewRequestWithContext(t.Context(), "POST", "/tx", strings.NewReader(`{"database":"a/b"}`))
	req.Header.Set("Authorization", "Bearer tok-9")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	if rec.Code != 500 || !strings.Contains(body, "missing_configuration") || !strings.Contains(body, EnvTokenKV) ||
		!strings.Contains(body, "kv_namespaces") || strings.Contains(body, "pw-secret-1") {
		t.Fatalf("%d %s", rec.Code, body)
	}
}
