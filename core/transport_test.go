package core

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a fake API answering from a script of statuses.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	header   http.Header // extra headers on every answer
	calls    int
	idemKeys []string
	bodies   []string
	agents   []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	i := r.calls
	r.calls++
	r.idemKeys = append(r.idemKeys, req.Header.Get("Idempotency-Key"))
	r.bodies = append(r.bodies, string(b))
	r.agents = append(r.agents, req.Header.Get("User-Agent"))
	st := http.StatusOK
	if i < len(r.statuses) {
		st = r.statuses[i]
	}
	for k, v := range r.header {
		w.Header()[k] = v
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	if st >= 300 {
		io.WriteString(w, `{"error":"scripted failure","code":"scripted"}`)
		return
	}
	io.WriteString(w, `{"databases":[],"id":"x","name":"a/b","account":{"id":"1","name":"a"}}`)
}

func (r *recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func newTestClient(t *testing.T, url string, clk Clock, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithAPIKey("v2_testkey"), WithClock(clk)}, opts...)
	c, err := NewClient(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetryMatrix(t *testing.T) {
	t.Parallel()
	type call func(ctx context.Context, c *Client) error
	get := func(ctx context.Context, c *Client) error { _, err := c.ListDatabases(ctx); return err }
	del := func(ctx context.Context, c *Client) error { return c.DeleteDatabase(ctx, "a/b") }
	createDB := func(ctx context.Context, c *Client) error {
		_, err := c.CreateDatabase(ctx, CreateDatabaseRequest{Name: "b"})
		return err
	}
	query := func(ctx context.Context, c *Client) error { _, err := c.Query(ctx, "a/b", "select 1"); return err }
	patch := func(ctx context.Context, c *Client) error {
		n := "c"
		_, err := c.UpdateDatabase(ctx, "a/b", UpdateDatabaseRequest{Name: &n})
		return err
	}
	tests := []struct {
		name      string
		call      call
		statuses  []int
		wantCalls int
		wantErr   error
		status    int // the status of the *APIError expected, 0 for success
	}{
		{"GET 503 then ok", get, []int{503, 200}, 2, nil, 0},
		{"GET 500 502 504 then ok", get, []int{500, 502, 504, 200}, 4, nil, 0},
		{"GET 429 then ok", get, []int{429, 200}, 2, nil, 0},
		{"GET 501 not retried", get, []int{501, 200}, 1, nil, 501},
		{"GET 507 (storage limit) not retried", get, []int{507, 200}, 1, nil, 507},
		{"GET 400 not retried", get, []int{400, 200}, 1, ErrBadRequest, 0},
		{"GET 404 not retried", get, []int{404}, 1, ErrNotFound, 0},
		{"GET gives up after MaxAttempts", get, []int{503, 503, 503, 503, 503}, 4, ErrUnavailable, 0},
		{"DELETE 503 retried", del, []int{503, 200}, 2, nil, 0},
		{"POST with Idempotency-Key retried", createDB, []int{500, 503, 200}, 3, nil, 0},
		{"POST query without key not retried", query, []int{503, 200}, 1, ErrUnavailable, 0},
		{"PATCH without key not retried", patch, []int{502, 200}, 1, nil, 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{statuses: tc.statuses}
			srv := startServer(rec)
			defer srv.Close()
			clk := newFakeClock()
			c := newTestClient(t, srv.URL, clk)
			err := tc.call(t.Context(), c)
			var ae *APIError
			switch {
			case tc.status != 0:
				if !errors.As(err, &ae) || ae.StatusCode != tc.status {
					t.Fatalf("err = %v, want an APIError with status %d", err, tc.status)
				}
			case tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := rec.Calls(); got != tc.wantCalls {
				t.Fatalf("calls = %d, want %d", got, tc.wantCalls)
			}
			if got := len(clk.Sleeps()); got != tc.wantCalls-1 {
				t.Fatalf("sleeps = %d, want %d", got, tc.wantCalls-1)
			}
			if tc.wantCalls > 1 {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				for i := 1; i < len(rec.idemKeys); i++ {
					if rec.idemKeys[i] != rec.idemKeys[0] || rec.bodies[i] != rec.bodies[0] {
						t.Fatalf("attempt %d differs: key %q body %q vs key %q body %q", i, rec.idemKeys[i], rec.bodies[i], rec.idemKeys[0], rec.bodies[0])
					}
				}
			}
		})
	}
}

func TestIdempotencyKeyReusedAndFresh(t *testing.T) {
	t.Parallel()
	rec := &recorder{statuses: []int{503, 503, 201, 201}}
	srv := startServer(rec)
	defer srv.Close()
	c := newTestClient(t, srv.URL, newFakeClock())
	for range 2 {
		if _, err := c.CreateDatabase(t.Context(), CreateDatabaseRequest{Name: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	k := rec.idemKeys
	if len(k) != 4 || k[0] == "" || k[0] != k[1] || k[1] != k[2] || k[3] == k[2] || k[3] == "" {
		t.Fatalf("idempotency keys = %q: want the same key for the 3 attempts of the first call and a new one for the second call", k)
	}
	if !strings.HasPrefix(rec.agents[0], "bitkit-go/"+Version+" (+") {
		t.Fatalf("user agent = %q", rec.agents[0])
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	for _, st := range []int{429, 503} {
		rec := &recorder{statuses: []int{st, 200}, header: http.Header{"Retry-After": {"7"}}}
		srv := startServer(rec)
		clk := newFakeClock()
		c := newTestClient(t, srv.URL, clk)
		if _, err := c.ListDatabases(t.Context()); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if s := clk.Sleeps(); len(s) != 1 || s[0] != 7*time.Second {
			t.Fatalf("status %d: sleeps = %v, want [7s]", st, s)
		}
	}
	// A Retry-After beyond the context's deadline is returned at once.
	{
		rec := &recorder{statuses: []int{503, 200}, header: http.Header{"Retry-After": {"30"}}}
		srv := startServer(rec)
		clk := newFakeClock()
		c := newTestClient(t, srv.URL, clk)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := c.ListDatabases(ctx)
		cancel()
		srv.Close()
		if !errors.Is(err, ErrUnavailable) || rec.Calls() != 1 || len(clk.Sleeps()) != 0 {
			t.Fatalf("Retry-After past the deadline: err = %v, calls = %d, sleeps = %v", err, rec.Calls(), clk.Sleeps())
		}
	}
	// A Retry-After beyond MaxRetryAfter is returned at once.
	rec := &recorder{statuses: []int{429, 200}, header: http.Header{"Retry-After": {"3600"}}}
	srv := startServer(rec)
	defer srv.Close()
	clk := newFakeClock()
	c := newTestClient(t, srv.URL, clk)
	_, err := c.ListDatabases(t.Context())
	if !errors.Is(err, ErrRateLimited) || rec.Calls() != 1 || len(clk.Sleeps()) != 0 {
		t.Fatalf("err = %v, calls = %d, sleeps = %v", err, rec.Calls(), clk.Sleeps())
	}
}

func TestBackoffCappedWithJitter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Rand: func() float64 { return 0.999999 }}
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, p.Backoff(n).Round(time.Millisecond))
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff ceilings = %v, want %v ms", got, want)
		}
	}
	half := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Rand: func() float64 { return 0.5 }}
	if d := half.Backoff(3); d != 200*time.Millisecond {
		t.Fatalf("jittered backoff = %v, want 200ms", d)
	}

	// Through the transport: the sleeps follow the policy.
	rec := &recorder{statuses: []int{500, 500, 500, 500, 500, 500}}
	srv := startServer(rec)
	defer srv.Close()
	clk := newFakeClock()
	c := newTestClient(t, srv.URL, clk, WithRetryPolicy(RetryPolicy{MaxAttempts: 6, BaseDelay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond, Rand: func() float64 { return 0.5 }}))
	_, err := c.ListDatabases(t.Context())
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 {
		t.Fatalf("err = %v", err)
	}
	s := clk.Sleeps()
	want2 := []time.Duration{50, 100, 150, 150, 150}
	if len(s) != len(want2) {
		t.Fatalf("sleeps = %v", s)
	}
	for i := range want2 {
		if s[i] != want2[i]*time.Millisecond {
			t.Fatalf("sleeps = %v, want %v ms", s, want2)
		}
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	t.Parallel()
	rec := &recorder{statuses: []int{503, 503, 503, 503}}
	srv := startServer(rec)
	defer srv.Close()
	clk := newFakeClock()
	clk.block = true
	c := newTestClient(t, srv.URL, clk)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-clk.slept
		cancel()
	}()
	_, err := c.ListDatabases(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if rec.Calls() != 1 {
		t.Fatalf("calls = %d, want 1", rec.Calls())
	}
}

// failingFetcher fails the first n requests with a transport error.
type failingFetcher struct {
	n     atomic.Int32
	fails int32
	base  Fetcher
}

func (f *failingFetcher) Fetch(ctx context.Context, r *Request) (*Response, error) {
	if f.n.Add(1) <= f.fails {
		r.closeBody()
		return nil, errors.New("connection refused (simulated)")
	}
	return f.base.Fetch(ctx, r)
}

func TestTransportErrorRetried(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := startServer(rec)
	defer srv.Close()
	ft := &failingFetcher{fails: 2, base: DefaultFetcher}
	clk := newFakeClock()
	c := newTestClient(t, srv.URL, clk, WithFetcher(ft))
	if _, err := c.ListDatabases(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rec.Calls() != 1 || ft.n.Load() != 3 {
		t.Fatalf("server calls %d, transport calls %d", rec.Calls(), ft.n.Load())
	}
	// A query (POST without key) is not retried after a transport error.
	ft2 := &failingFetcher{fails: 1, base: DefaultFetcher}
	c2 := newTestClient(t, srv.URL, clk, WithFetcher(ft2))
	_, err := c2.Query(t.Context(), "a/b", "select 1")
	if err == nil || !strings.Contains(err.Error(), "simulated") || ft2.n.Load() != 1 {
		t.Fatalf("err = %v, transport calls %d", err, ft2.n.Load())
	}
}

func TestStreamedUploadNeverRetried(t *testing.T) {
	t.Parallel()
	rec := &recorder{statuses: []int{503, 202}}
	srv := startServer(rec)
	defer srv.Close()
	c := newTestClient(t, srv.URL, newFakeClock())
	_, err := c.CreateImportJob(t.Context(), "a/b", ImportRequest{Table: "t", File: strings.NewReader("a,b\n1,2\n")})
	if !errors.Is(err, ErrUnavailable) || rec.Calls() != 1 {
		t.Fatalf("err = %v, calls = %d: a streamed upload must not be retried", err, rec.Calls())
	}
}

func TestOptionValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		endpoint string
		opt      Option
	}{
		{"empty key", "", WithAPIKey("")},
		{"empty token", "", WithToken(" ")},
		{"nil fetcher", "", WithFetcher(nil)},
		{"bad account", "", WithAccount("-bad/name")},
		{"negative retry", "", WithRetryPolicy(RetryPolicy{MaxAttempts: -1})},
		{"bad endpoint", "ftp://x", nil},
		{"endpoint with password", "http://u:hunter2@h", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewClient(tc.endpoint, tc.opt)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
