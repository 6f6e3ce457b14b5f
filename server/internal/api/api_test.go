package api

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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

func TestLoginLimiter(t *testing.T) {
	t.Parallel()
	l := newLoginLimiter(2, 3, time.Hour)
	mustReserve := func(keys ...string) *attempt {
		t.Helper()
		a, wait, _ := l.reserve(keys...)
		if wait != 0 || a == nil {
			t.Fatalf("reserve(%v) refused (wait %v)", keys, wait)
		}
		return a
	}
	l.fail(mustReserve("u:a", "a:1"))
	l.fail(mustReserve("u:a", "a:1"))
	if a, w, busy := l.reserve("u:a", "a:2"); a != nil || w <= 0 || w > time.Hour || busy {
		t.Fatalf("user not blocked after 2 failures: %v, %v", a, w)
	}
	l.cancel(mustReserve("u:b", "a:2")) // never verified: given back
	l.fail(mustReserve("u:b", "a:1"))
	if a, _, _ := l.reserve("u:c", "a:1"); a != nil {
		t.Fatal("address not blocked after 3 failures")
	}
	l.fail(mustReserve("u:c", "a:2"))
	l.succeed(mustReserve("u:c", "a:2")) // forgets the user's failure, gives the address its slot back
	l.fail(mustReserve("u:c", "a:2"))
	if got := l.counters["u:c"].n; got != 1 {
		t.Fatalf("user count %d after failure, success, failure; want 1", got)
	}
	if got := l.counters["a:2"].n; got != 2 {
		t.Fatalf("address count %d after a cancel, 2 failures and a success; want 2", got)
	}
}

// TestLoginLimiterConcurrent: N concurrent attempts reserve at most the
// limit, even when one of them is the right password and succeeds while
// the others are in flight.
func TestLoginLimiterConcurrent(t *testing.T) {
	t.Parallel()
	const n, perUser = 40, 5
	l := newLoginLimiter(perUser, 1000, time.Hour)
	var (
		mu       sync.Mutex
		admitted []*attempt
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if a, _, _ := l.reserve("u:victim", "a:1"); a != nil {
				mu.Lock()
				admitted = append(admitted, a)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(admitted) != perUser {
		t.Fatalf("%d of %d concurrent attempts admitted; want exactly the limit %d", len(admitted), n, perUser)
	}
	// The right password settles first while the others are in flight: no
	// slot comes free for the rest of the burst.
	l.succeed(admitted[0])
	// Refused while the others are in flight: busy (their outcome is not
	// known yet), not rate limited.
	if a, wait, busy := l.reserve("u:victim", "a:1"); a != nil || wait != 0 || !busy {
		t.Fatalf("a success racing other attempts: reserve = %v, %v, busy %v; want a busy refusal", a, wait, busy)
	}
	for _, a := range admitted[1:] {
		l.fail(a)
	}
	if a, wait, busy := l.reserve("u:victim", "a:1"); a != nil || wait <= 0 || busy {
		t.Fatalf("after the limit of failures: reserve = %v, %v, busy %v; want rate limited", a, wait, busy)
	}
	if got := l.counters["a:1"].n; got != perUser-1 {
		t.Fatalf("address count %d; want %d (the success given back)", got, perUser-1)
	}
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
