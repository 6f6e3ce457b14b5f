package handler

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// These tests cover what the handler decides before any request to bitd;
// the full path (bitd, SQL errors, timeouts) runs in workerd in
// workers/workerdtest.
func TestHandlerLocalAnswers(t *testing.T) {
	t.Parallel()
	noNetwork := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("unexpected request to %s", r.URL)
		return nil, http.ErrUseLastResponse
	})
	full := map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_API_KEY": "key-123"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
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
	const good = `{"database":"a/b","query":"select 1"}`
	tests := []struct {
		name, method, path, body, auth string
		env                            map[string]string
		status                         int
		code                           string
	}{
		{"healthz", "GET", "/healthz", "", "", full, 200, ""},
		{"unknown path", "GET", "/nope", "", "", full, 404, "not_found"},
		{"GET /query", "GET", "/query", "", "", full, 405, "method_not_allowed"},
		{"bad JSON", "POST", "/query", `{"database":`, "", full, 400, "bad_request"},
		{"missing API key", "POST", "/query", good, "", with(map[string]string{"BITKIT_API_KEY": ""}), 500, "missing_configuration"},
		{"missing endpoint", "POST", "/query", good, "", with(map[string]string{"BITKIT_ENDPOINT": ""}), 500, "missing_configuration"},
		{"bad timeout", "POST", "/query", good, "", with(map[string]string{"BITKIT_TIMEOUT_MS": "soon"}), 500, "invalid_configuration"},
		{"caller token missing", "POST", "/query", good, "", with(map[string]string{EnvWorkerToken: "tok-9"}), 401, "unauthorized"},
		{"caller token wrong", "POST", "/query", good, "Bearer tok-8", with(map[string]string{EnvWorkerToken: "tok-9"}), 401, "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := New(Config{Getenv: func(k string) string { return tc.env[k] }, Transport: noNetwork})
			req := httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s: %s", rec.Code, rec.Header().Get("Content-Type"), body)
			}
			if tc.code != "" && !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Fatalf("body lacks code %s: %s", tc.code, body)
			}
			for _, secret := range []string{"key-123", "tok-9"} {
				if strings.Contains(string(body), secret) {
					t.Fatalf("the answer shows a secret: %s", body)
				}
			}
		})
	}
}

// TestHandlerCallerTokenAccepted checks that the right bearer token lets the
// request through to bitd (here a transport that records it).
func TestHandlerCallerTokenAccepted(t *testing.T) {
	t.Parallel()
	var sawKey string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sawKey = r.Header.Get("Authorization")
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"query_string":"select 1","metadata":{"x":"integer"},"columns":[{"name":"x","type":"integer","type_oid":23}],"data":[[1]],"row_count":1,"command":"SELECT 1"}`))}, nil
	})
	env := map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_API_KEY": "key-123", EnvWorkerToken: "tok-9"}
	h := New(Config{Getenv: func(k string) string { return env[k] }, Transport: rt})
	req := httptest.NewRequestWithContext(t.Context(), "POST", "/query", strings.NewReader(`{"database":"a/b","query":"select 1"}`))
	req.Header.Set("Authorization", "Bearer tok-9")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"data":[[1]]`) {
		t.Fatalf("%d: %s", rec.Code, rec.Body)
	}
	if sawKey != "Bearer key-123" {
		t.Fatalf("bitd saw Authorization %q, want the API key (not the caller's token)", sawKey)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
