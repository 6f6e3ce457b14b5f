package httpcomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/httpcomp/httpcomptest"
	"github.com/klauspost/compress/gzip"
)

func TestNegotiate(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":                              "",
		"identity":                      "",
		"gzip":                          "gzip",
		"x-gzip":                        "gzip",
		"zstd":                          "zstd",
		"gzip, deflate, br, zstd":       "zstd",
		"gzip;q=1.0, zstd;q=0.5":        "gzip",
		"zstd;q=0, gzip":                "gzip",
		"gzip;q=0":                      "",
		"*":                             "gzip",
		"*;q=0.3, zstd;q=0.2":           "gzip",
		"*, gzip;q=0":                   "",
		"br":                            "",
		"GZIP ; Q=0.8":                  "gzip",
		"zstd;q=bogus, gzip;q=0.1":      "gzip",
		"deflate, gzip;q=0.9, zstd;q=1": "zstd",
	}
	for in, want := range cases {
		if got := negotiate([]string{in}); got != want {
			t.Errorf("negotiate(%q) = %q, want %q", in, got, want)
		}
	}
}

func bigJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `[%d,"row %d"]`, i, i)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	big := bigJSON(5000)
	small := []byte(`{"status":"ok"}` + "\n")
	cases := []struct {
		name      string
		accept    string
		method    string
		header    map[string]string
		setLength bool
		body      []byte
		status    int
		wantEnc   string
		wantVary  bool
	}{
		{"gzip_big", "gzip", "GET", map[string]string{"Content-Type": "application/json"}, false, big, 200, "gzip", true},
		{"zstd_big", "gzip, zstd", "GET", map[string]string{"Content-Type": "application/json"}, false, big, 200, "zstd", true},
		{"length_known", "gzip", "GET", map[string]string{"Content-Type": "application/json; charset=utf-8"}, true, big, 200, "gzip", true},
		{"ndjson", "zstd", "GET", map[string]string{"Content-Type": "application/x-ndjson"}, false, big, 200, "zstd", true},
		{"error_status", "gzip", "GET", map[string]string{"Content-Type": "application/json"}, false, big, 400, "gzip", true},
		{"tiny", "gzip", "GET", map[string]string{"Content-Type": "application/json"}, false, small, 200, "", true},
		{"tiny_with_length", "gzip", "GET", map[string]string{"Content-Type": "application/json"}, true, small, 200, "", true},
		{"not_asked", "", "GET", map[string]string{"Content-Type": "application/json"}, false, big, 200, "", true},
		{"html", "gzip", "GET", map[string]string{"Content-Type": "text/html"}, false, big, 200, "", false},
		{"download", "gzip", "GET", map[string]string{"Content-Type": "application/json", "Content-Disposition": `attachment; filename="x.json"`}, true, big, 200, "", false},
		{"already_encoded", "gzip", "GET", map[string]string{"Content-Type": "application/json", "Content-Encoding": "identity"}, false, big, 200, "identity", false},
		{"range", "gzip", "GET", map[string]string{"Content-Type": "application/json", "Content-Range": "bytes 0-9/100"}, false, big, 206, "", false},
		{"no_content", "gzip", "DELETE", map[string]string{"Content-Type": "application/json"}, false, nil, 204, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				if c.setLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(c.body)))
				}
				w.WriteHeader(c.status)
				// in pieces, as handlers write
				for rest := c.body; len(rest) > 0; {
					n := min(len(rest), 700)
					if _, err := w.Write(rest[:n]); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					rest = rest[n:]
				}
			}))
			req := httptest.NewRequest(c.method, "/x", nil)
			if c.accept != "" {
				req.Header.Set("Accept-Encoding", c.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			enc := rec.Header().Get("Content-Encoding")
			if enc != c.wantEnc {
				t.Fatalf("Content-Encoding %q, want %q", enc, c.wantEnc)
			}
			if enc == "identity" {
				enc = ""
			}
			if got := httpcomptest.Decode(t, enc, rec.Body.Bytes()); !bytes.Equal(got, c.body) {
				t.Fatalf("decoded body differs: %d bytes, want %d", len(got), len(c.body))
			}
			if enc != "" {
				if rec.Body.Len() >= len(c.body)/2 {
					t.Errorf("compressed to %d of %d bytes", rec.Body.Len(), len(c.body))
				}
				if cl := rec.Header().Get("Content-Length"); cl != "" {
					t.Errorf("compressed answer keeps Content-Length %s", cl)
				}
			} else if c.setLength && rec.Header().Get("Content-Length") != strconv.Itoa(len(c.body)) {
				t.Errorf("Content-Length %q, want %d", rec.Header().Get("Content-Length"), len(c.body))
			}
			if got := strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding"); got != c.wantVary {
				t.Errorf("Vary %q, want Accept-Encoding: %v", rec.Header().Get("Vary"), c.wantVary)
			}
		})
	}
}

// A streamed answer reaches the client compressed, batch by batch: the
// client decodes the first line while the handler still waits.
func TestStreamFlushes(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			srv := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				rc := http.NewResponseController(w)
				// Deadlines reach the connection through Unwrap.
				if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
					t.Errorf("SetWriteDeadline: %v", err)
				}
				_, _ = io.WriteString(w, `{"first":true}`+"\n")
				if err := rc.Flush(); err != nil {
					t.Errorf("flush: %v", err)
				}
				<-release
				_, _ = io.WriteString(w, `{"row_count":1}`+"\n")
			})))
			defer srv.Close()
			defer close(release)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
			req.Header.Set("Accept-Encoding", enc)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if got := res.Header.Get("Content-Encoding"); got != enc {
				t.Fatalf("Content-Encoding %q, want %q", got, enc)
			}
			line, err := bufio.NewReader(httpcomptest.Reader(t, enc, res.Body)).ReadString('\n')
			if err != nil || line != `{"first":true}`+"\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
		})
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	plain := []byte(`{"query_string":"SELECT 1"}`)
	bomb := gz(t, make([]byte, 64<<20)) // 64 MiB of zeros in about 64 KiB
	cases := []struct {
		name     string
		encoding string
		body     []byte
		status   int
		wantBody []byte
		wantErr  string
	}{
		{"plain", "", plain, 200, plain, ""},
		{"identity", "identity", plain, 200, plain, ""},
		{"gzip", "gzip", gz(t, plain), 200, plain, ""},
		{"x_gzip", "x-gzip", gz(t, plain), 200, plain, ""},
		{"not_gzip", "gzip", plain, 400, nil, "not complete, valid gzip data"},
		{"truncated", "gzip", gz(t, plain)[:20], 400, nil, "not complete, valid gzip data"},
		{"bomb", "gzip", bomb, 413, nil, "larger than 1048576 bytes"},
		{"brotli", "br", plain, 415, nil, `is not supported: send it uncompressed or with Content-Encoding: gzip`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got []byte
			h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
					t.Errorf("the handler sees Content-Encoding %q", r.Header.Get("Content-Encoding"))
				}
				b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
				var mbe *http.MaxBytesError
				var ae *apierr.Error
				switch {
				case errors.As(err, &mbe):
					if !Decoded(r) {
						t.Error("Decoded is false for a gzip body")
					}
					apierr.Write(w, r, apierr.New(413, "body_too_large", "larger than %d bytes", mbe.Limit))
				case errors.As(err, &ae):
					apierr.Write(w, r, ae)
				case err != nil:
					t.Errorf("read: %v", err)
				default:
					got = b
				}
			}))
			req := httptest.NewRequest("POST", "/x", bytes.NewReader(c.body))
			if c.encoding != "" {
				req.Header.Set("Content-Encoding", c.encoding)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			if c.wantErr != "" && !strings.Contains(rec.Body.String(), c.wantErr) {
				t.Fatalf("body %s, want it to say %q", rec.Body, c.wantErr)
			}
			if c.status == 200 && !bytes.Equal(got, c.wantBody) {
				t.Fatalf("handler read %q, want %q", got, c.wantBody)
			}
		})
	}
}

// The bomb ends at the limit: the decompressor never inflates far past it.
func TestBombReadsLittle(t *testing.T) {
	t.Parallel()
	bomb := gz(t, make([]byte, 256<<20))
	src := &countReader{r: bytes.NewReader(bomb)}
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20))
	}))
	req := httptest.NewRequest("POST", "/x", src)
	req.Header.Set("Content-Encoding", "gzip")
	h.ServeHTTP(httptest.NewRecorder(), req)
	// 1 MiB of zeros is about 1 KiB of deflate; allow generous read-ahead.
	if src.n > 64<<10 || src.n == 0 {
		t.Fatalf("read %d compressed bytes of %d for a 1 MiB limit", src.n, len(bomb))
	}
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
