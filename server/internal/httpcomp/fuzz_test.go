package httpcomp

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzNegotiate: any Accept-Encoding picks zstd, gzip or nothing, and
// never something the header refuses outright.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "zstd;q=0.5, gzip;q=0.6", "*;q=0", "br, deflate", ";;q=,", "gzip;q=1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := negotiate([]string{s})
		if got != "" && got != "gzip" && got != "zstd" {
			t.Fatalf("negotiate(%q) = %q", s, got)
		}
		if got != "" && negotiate([]string{s + ", " + got + ";q=0"}) == got {
			t.Fatalf("negotiate(%q) still picks %s after %s;q=0", s, got, got)
		}
	})
}

// FuzzGzipBody: any body declared gzip either decodes or fails with an
// error; reading never panics and stops at the limit.
func FuzzGzipBody(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(b))
		req.Header.Set("Content-Encoding", "gzip")
		h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20))
			if n > 1<<20 {
				t.Fatalf("read %d bytes past the limit", n)
			}
		}))
		h.ServeHTTP(httptest.NewRecorder(), req)
	})
}
