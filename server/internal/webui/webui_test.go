package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The committed dist/ holds no index.html, so without `make web` the handler
// explains how to build the dashboard; with it, the page is served. Both are
// checked by what Available reports.
func TestHandler(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, tc := range []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{"GET", "/", 200, ""},
		{"GET", "/settings", 200, ""},
		{"POST", "/", 0, ""},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body := w.Body.String()
			if !Available() {
				if w.Code != 200 || !strings.Contains(body, "make web") {
					t.Fatalf("%s %s = %d %q, want 200 with the build explanation", tc.method, tc.path, w.Code, body)
				}
				return
			}
			want := tc.wantStatus
			if tc.method == "POST" {
				want = http.StatusMethodNotAllowed
			}
			if w.Code != want {
				t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, w.Code, want)
			}
			if want == 200 && !strings.Contains(body, "<title>bitkit") {
				t.Fatalf("%s %s body does not look like the dashboard: %.200q", tc.method, tc.path, body)
			}
		})
	}
	if Available() {
		t.Run("wasm gzip", func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequestWithContext(t.Context(), "GET", "/bitkit.wasm", nil)
			r.Header.Set("Accept-Encoding", "gzip, br")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 || w.Header().Get("Content-Type") != "application/wasm" || w.Header().Get("Content-Encoding") != "gzip" {
				t.Fatalf("GET /bitkit.wasm = %d %v", w.Code, w.Header())
			}
			if b := w.Body.Bytes(); len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
				t.Fatal("body is not gzip")
			}
		})
		t.Run("missing asset", func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequestWithContext(t.Context(), "GET", "/nope.js", nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 404 {
				t.Fatalf("GET /nope.js = %d, want 404", w.Code)
			}
		})
	}
}
