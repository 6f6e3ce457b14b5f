package api

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	type body struct {
		Name string `json:"name"`
		Flag *bool  `json:"flag"`
	}
	for _, tc := range []struct {
		name, in   string
		allowEmpty bool
		wantCode   string
		wantIn     string // substring of the message
		wantName   string
	}{
		{name: "ok", in: `{"name":"a"}`, wantName: "a"},
		{name: "unknown fields ignored", in: `{"name":"a","zzz":{"x":[1]}}`, wantName: "a"},
		{name: "empty allowed", in: ``, allowEmpty: true},
		{name: "empty refused", in: ` `, wantCode: "invalid_json"},
		{name: "truncated", in: `{"name":`, wantCode: "invalid_json", wantIn: "offset"},
		{name: "garbage", in: `{"name" "a"}`, wantCode: "invalid_json", wantIn: "offset"},
		{name: "bad utf8", in: "{\"name\":\"\xff\"}", wantCode: "invalid_utf8"},
		{name: "wrong type", in: `{"name":5}`, wantCode: "invalid_field", wantIn: `"name"`},
		{name: "wrong type bool", in: `{"flag":"yes"}`, wantCode: "invalid_field", wantIn: `"flag"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.in))
			var b body
			err := DecodeJSON(r, &b, tc.allowEmpty)
			if tc.wantCode == "" {
				if err != nil || b.Name != tc.wantName {
					t.Fatalf("DecodeJSON = %v, name %q; want nil, %q", err, b.Name, tc.wantName)
				}
				return
			}
			e := apierr.As(err)
			if e.Code != tc.wantCode || e.Status != 400 || !strings.Contains(e.Message, tc.wantIn) {
				t.Fatalf("DecodeJSON error = %d %s %q; want 400 %s containing %q", e.Status, e.Code, e.Message, tc.wantCode, tc.wantIn)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/", bytes.NewReader(bytes.Repeat([]byte(" "), 2000)))
		r.Body = http.MaxBytesReader(w, r.Body, 1000)
		var b body
		if e := apierr.As(DecodeJSON(r, &b, false)); e.Status != 413 || e.Code != "body_too_large" {
			t.Fatalf("got %d %s", e.Status, e.Code)
		}
	})
}

func decodeBody(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := jsonx.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	return m
}

func TestRouter(t *testing.T) {
	t.Parallel()
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.HandleFunc("GET /v2beta/boom", func(http.ResponseWriter, *http.Request) { panic("boom") }, Public)
	s.HandleFunc("GET /v2beta/echo-id", func(w http.ResponseWriter, r *http.Request) {
		apierr.WriteJSON(w, 200, map[string]string{"id": apierr.RequestID(r.Context())})
	}, Public)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2beta/nope", 404, "not_found"},
		{"GET", "/nope", 404, "not_found"},
		{"PUT", "/v2beta/db", 405, "method_not_allowed"},
		{"PUT", "/v2beta/db/", 405, "method_not_allowed"},
		{"GET", "/v2beta/db", 401, "unauthorized"},
		{"GET", "/v2beta/db/", 401, "unauthorized"},
		{"GET", "/v2beta/db/a/b/", 401, "unauthorized"},
		{"GET", "/v2beta/db/a/b/c/d", 404, "not_found"},
		{"GET", "/v2beta/./db", 404, "not_found"},
		{"GET", "/v2beta/boom", 500, "internal"},
		{"GET", "/v2beta/boom/", 500, "internal"},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, ts.URL+tc.path, nil)
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			m := decodeBody(t, res)
			if res.StatusCode != tc.status || m["code"] != tc.code || m["error"] == "" || res.Header.Get("X-Request-Id") == "" {
				t.Fatalf("%s %s = %d %v; want %d %s", tc.method, tc.path, res.StatusCode, m, tc.status, tc.code)
			}
		})
	}
	t.Run("request id", func(t *testing.T) {
		t.Parallel()
		for in, keep := range map[string]bool{"abc-123.X": true, "bad id with spaces": false, strings.Repeat("x", 200): false} {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", ts.URL+"/v2beta/echo-id", nil)
			req.Header.Set("X-Request-Id", in)
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			m := decodeBody(t, res)
			res.Body.Close()
			got := res.Header.Get("X-Request-Id")
			if (got == in) != keep || m["id"] != got || got == "" {
				t.Fatalf("incoming %q → header %q, ctx %v; keep=%v", in, got, m["id"], keep)
			}
		}
	})
}
