// Package testwait is the polling helper of bitkit's tests: wait for a
// condition that something else makes true (a backend ends, a job finishes,
// a pool closes) instead of sleeping a fixed time or hand-writing a
// sleep-and-check loop.
//
//	testwait.Eventually(t, 10*time.Second, func() error {
//		if n := activeBackends(); n != 0 {
//			return fmt.Errorf("%d backends still run the query", n)
//		}
//		return nil
//	})
//
// The condition is tried at once, then at growing intervals (5 ms up to
// 100 ms) until it returns nil or the time is up; the last error says what
// was still wrong. Every module of the repository can import it (nested
// modules reach the root module through their replace directive).
package testwait

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Intervals between two tries of a condition.
const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 100 * time.Millisecond
)

// Eventually calls cond until it returns nil, and fails t (t.Fatalf, so
// only from the test's own goroutine) with cond's last error when within
// has passed first, or when t's context ends.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	if err := Wait(t.Context(), within, cond); err != nil {
		t.Fatal(err)
	}
}

// Wait calls cond until it returns nil and returns nil then; it returns an
// error wrapping cond's last error when within has passed, or ctx's error
// (with cond's last) when ctx ends first. It is for goroutines other than
// the test's and for callers that handle the failure themselves.
func Wait(ctx context.Context, within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	interval := firstInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("still not so after %v: %w", within, err)
		}
		timer.Reset(min(interval, left))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting (%w): %w", ctx.Err(), err)
		}
		interval = min(2*interval, maxInterval)
	}
}
