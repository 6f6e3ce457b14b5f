package core

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeClock records sleeps instead of sleeping. With block set, Sleep waits
// for its context to end (to test cancellation during backoff).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	block  bool
	slept  chan struct{} // receives a value when a blocking Sleep starts
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), slept: make(chan struct{}, 16)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	block := f.block
	f.mu.Unlock()
	if block {
		f.slept <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	return ctx.Err()
}

func (f *fakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// newHTTPServer starts a test server for h (startServer) and returns its URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := startServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
