package testwait_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

func TestWaitUntilTrue(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	err := testwait.Wait(t.Context(), time.Minute, func() error {
		if n := calls.Add(1); n < 4 {
			return fmt.Errorf("only %d calls", n)
		}
		return nil
	})
	if err != nil || calls.Load() != 4 {
		t.Fatalf("Wait = %v after %d calls, want nil after 4", err, calls.Load())
	}
}

func TestWaitTimesOutWithLastError(t *testing.T) {
	t.Parallel()
	errNotYet := errors.New("not yet")
	var calls atomic.Int32
	err := testwait.Wait(t.Context(), 30*time.Millisecond, func() error { calls.Add(1); return errNotYet })
	if !errors.Is(err, errNotYet) || !strings.Contains(err.Error(), "30ms") {
		t.Fatalf("Wait = %v, want the condition's last error and the time waited", err)
	}
	if calls.Load() < 2 {
		t.Errorf("condition tried %d times in 30ms, want several", calls.Load())
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var calls atomic.Int32
	err := testwait.Wait(ctx, time.Hour, func() error {
		if calls.Add(1) == 2 {
			cancel()
		}
		return errors.New("never")
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

// recorder is a testing.TB that records Fatal instead of ending the test.
type recorder struct {
	testing.TB
	ctx    context.Context
	failed string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Context() context.Context  { return r.ctx }
func (r *recorder) Fatal(args ...any)         { r.failed = fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...) }

func TestEventually(t *testing.T) {
	t.Parallel()
	ok := &recorder{TB: t, ctx: t.Context()}
	n := 0
	testwait.Eventually(ok, time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if ok.failed != "" || n != 3 {
		t.Errorf("Eventually failed %q after %d calls, want success after 3", ok.failed, n)
	}
	bad := &recorder{TB: t, ctx: t.Context()}
	testwait.Eventually(bad, 20*time.Millisecond, func() error { return errors.New("the pool is still open") })
	if !strings.Contains(bad.failed, "the pool is still open") {
		t.Errorf("Eventually failed with %q, want the condition's error", bad.failed)
	}
}
