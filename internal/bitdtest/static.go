package bitdtest

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// ServeDir serves the files of dir on 127.0.0.1 (uncached, .mjs as
// JavaScript) until the test ends and returns its origin, "http://127.0.0.1:port":
// a second origin for browser tests, so that every call to bitd is a CORS
// request.
func ServeDir(t testing.TB, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if strings.HasSuffix(r.URL.Path, ".mjs") {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
