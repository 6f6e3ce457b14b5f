package webui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHandlerBuilt(t *testing.T) {
	t.Parallel()
	wasm := []byte("\x00asm\x01\x00\x00\x00 module bytes")
	h := handler(fstest.MapFS{
		"index.html":     {Data: []byte("<!doctype html><title>bitkit dashboard</title>")},
		"app.js":         {Data: []byte("export const dashboard = 1")},
		"app.js.gz":      {Data: gz(t, []byte("export const dashboard = 1"))},
		"style.css":      {Data: []byte("body{margin:0}")},
		"bitkit.mjs":     {Data: []byte("export {}")},
		"bitkit.wasm":    {Data: wasm},
		"bitkit.wasm.gz": {Data: gz(t, wasm)},
	})
	for _, tc := range []struct {
		name, method, path, acceptEncoding string
		wantStatus                         int
		wantType, wantEncoding, wantBody   string
	}{
		{name: "index", method: "GET", path: "/", wantStatus: 200, wantType: "text/html", wantBody: "<title>bitkit dashboard"},
		{name: "client route", method: "GET", path: "/databases", wantStatus: 200, wantType: "text/html", wantBody: "<title>bitkit dashboard"},
		{name: "module", method: "GET", path: "/bitkit.mjs", wantStatus: 200, wantType: "text/javascript", wantBody: "export {}"},
		{name: "wasm gzip", method: "GET", path: "/bitkit.wasm", acceptEncoding: "gzip, br", wantStatus: 200, wantType: "application/wasm", wantEncoding: "gzip", wantBody: string(wasm)},
		{name: "wasm identity", method: "GET", path: "/bitkit.wasm", acceptEncoding: "br", wantStatus: 200, wantType: "application/wasm", wantBody: string(wasm)},
		{name: "gzip refused", method: "GET", path: "/bitkit.wasm", acceptEncoding: "gzip;q=0", wantStatus: 200, wantType: "application/wasm", wantBody: string(wasm)},
		{name: "bundle gzip", method: "GET", path: "/app.js", acceptEncoding: "gzip", wantStatus: 200, wantType: "text/javascript", wantEncoding: "gzip", wantBody: "export const dashboard"},
		{name: "bundle identity", method: "GET", path: "/app.js", wantStatus: 200, wantType: "text/javascript", wantBody: "export const dashboard"},
		{name: "css", method: "GET", path: "/style.css", acceptEncoding: "gzip", wantStatus: 200, wantType: "text/css", wantBody: "margin:0"},
		{name: "missing asset", method: "GET", path: "/nope.js", wantStatus: 404},
		{name: "post", method: "POST", path: "/", wantStatus: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, nil)
			if tc.acceptEncoding != "" {
				r.Header.Set("Accept-Encoding", tc.acceptEncoding)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, res.StatusCode, tc.wantStatus)
			}
			if tc.wantType != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), tc.wantType) {
				t.Fatalf("Content-Type = %q, want %s", res.Header.Get("Content-Type"), tc.wantType)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.wantEncoding {
				t.Fatalf("Content-Encoding = %q, want %q", got, tc.wantEncoding)
			}
			body := w.Body.Bytes()
			if tc.wantEncoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if tc.wantBody != "" && !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("body = %.100q, want it to contain %q", body, tc.wantBody)
			}
		})
	}
}

func TestHandlerNotBuilt(t *testing.T) {
	t.Parallel()
	h := handler(fstest.MapFS{"README.md": {Data: []byte("filled by make web")}})
	for _, path := range []string{"/", "/anything"} {
		r := httptest.NewRequestWithContext(t.Context(), "GET", path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "make web") {
			t.Fatalf("GET %s = %d %.200q, want 200 with the build explanation", path, w.Code, w.Body.String())
		}
	}
}

// The real embedded handler answers either way: the dashboard when `make web`
// ran before the build, the explanation otherwise.
func TestHandlerEmbedded(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequestWithContext(t.Context(), "GET", "/", nil)
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	want := "make web"
	if Available() {
		want = "<title>bitkit dashboard"
	}
	if w.Code != 200 || !strings.Contains(w.Body.String(), want) {
		t.Fatalf("GET / = %d %.200q, want 200 containing %q", w.Code, w.Body.String(), want)
	}
}
