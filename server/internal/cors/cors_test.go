package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

func TestParseOrigins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: " https://App.Example.com/ , http://127.0.0.1:5173", want: []string{"https://app.example.com", "http://127.0.0.1:5173"}},
		{in: "*", want: []string{"*"}},
		{in: "app.example.com", wantErr: `"app.example.com" is not an origin`},
		{in: "https://a.example/path", wantErr: "scheme://host[:port]"},
		{in: "ftp://a.example", wantErr: "is not an origin"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseOrigins(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseOrigins(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("ParseOrigins(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid")
		w.WriteHeader(http.StatusTeapot)
	})
	h := Middleware([]string{"https://good.example", "not an origin"})(next)
	star := Middleware([]string{"*"})(next)
	for _, tc := range []struct {
		name        string
		h           http.Handler
		method      string
		origin      string
		preflight   bool
		host        string
		wantStatus  int
		wantACAO    string
		wantMethods bool
		wantCode    string
	}{
		{name: "no origin", h: h, method: "GET", wantStatus: 418},
		{name: "allowed simple", h: h, method: "POST", origin: "https://good.example", wantStatus: 418, wantACAO: "https://good.example"},
		{name: "allowed case-insensitive", h: h, method: "GET", origin: "https://GOOD.example", wantStatus: 418, wantACAO: "https://GOOD.example"},
		{name: "allowed preflight", h: h, method: "OPTIONS", origin: "https://good.example", preflight: true, wantStatus: 204, wantACAO: "https://good.example", wantMethods: true},
		{name: "denied simple", h: h, method: "GET", origin: "https://evil.example", wantStatus: 418},
		{name: "denied preflight", h: h, method: "OPTIONS", origin: "https://evil.example", preflight: true, wantStatus: 403, wantCode: "cors_origin_not_allowed"},
		{name: "same origin", h: h, method: "POST", origin: "http://bitd.local:8080", host: "bitd.local:8080", wantStatus: 418},
		{name: "plain OPTIONS passes", h: h, method: "OPTIONS", origin: "https://good.example", wantStatus: 418, wantACAO: "https://good.example"},
		{name: "star", h: star, method: "OPTIONS", origin: "http://any.example:1", preflight: true, wantStatus: 204, wantACAO: "http://any.example:1", wantMethods: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequestWithContext(t.Context(), tc.method, "http://bitd.local:8080/v2beta/query", nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.preflight {
				r.Header.Set("Access-Control-Request-Method", "POST")
				r.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.wantStatus)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
				t.Fatalf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantACAO)
			}
			if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
				t.Fatalf("Vary = %q, want it to name Origin", res.Header.Values("Vary"))
			}
			if tc.wantACAO != "" {
				if got := res.Header.Get("Access-Control-Expose-Headers"); got != ExposedHeaders {
					t.Fatalf("Access-Control-Expose-Headers = %q", got)
				}
			} else if res.Header.Get("Access-Control-Expose-Headers") != "" {
				t.Fatalf("CORS headers sent to a refused origin: %v", res.Header)
			}
			if tc.wantMethods {
				if got := res.Header.Get("Access-Control-Allow-Methods"); got != AllowedMethods {
					t.Fatalf("Allow-Methods = %q", got)
				}
				for _, want := range []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "Accept", "X-Bitkit-Account"} {
					if !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), want) {
						t.Fatalf("Allow-Headers = %q lacks %s", res.Header.Get("Access-Control-Allow-Headers"), want)
					}
				}
			}
			if tc.wantCode != "" {
				var body struct{ Code, Error string }
				if err := jsonx.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatal(err)
				}
				if body.Code != tc.wantCode || !strings.Contains(body.Error, "--allowed-origins") {
					t.Fatalf("body = %+v, want code %q and a hint naming --allowed-origins", body, tc.wantCode)
				}
			}
		})
	}
}
