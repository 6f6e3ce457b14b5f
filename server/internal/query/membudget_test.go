package query

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

func TestByteBudget(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	b := newByteBudget(10*mib, 4*mib, 10*time.Millisecond)
	ctx := t.Context()
	for _, tc := range []struct {
		name    string
		account string
		n       int64
		code    string // "" = granted
		names   string // in the refusal message
	}{
		{"first", "a", 3 * mib, "", ""},
		{"over the account's share", "a", 2 * mib, "buffer_limit_reached", "--max-buffered-bytes-per-account"},
		{"other account", "b", 4 * mib, "", ""},
		{"third account", "c", 3 * mib, "", ""},
		{"over the total", "d", 1 * mib, "buffer_limit_reached", "--max-buffered-bytes"},
	} {
		err := b.acquire(ctx, tc.account, tc.n)
		if tc.code == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			continue
		}
		e := apierr.As(err)
		if e == nil || e.Status != http.StatusTooManyRequests || e.Code != tc.code ||
			!strings.Contains(e.Message, tc.names) || !strings.Contains(e.Message, "application/x-ndjson") {
			t.Fatalf("%s: got %v; want 429 %s naming %s and the stream advice", tc.name, err, tc.code, tc.names)
		}
	}
	if total, a := b.inUse("a"); total != 10*mib || a != 3*mib {
		t.Fatalf("in use %d, a %d; want 10 MiB, 3 MiB (refusals reserve nothing)", total, a)
	}
	b.release("a", 3*mib)
	b.release("b", 4*mib)
	b.release("c", 3*mib)
	if total, a := b.inUse("a"); total != 0 || a != 0 || len(b.accounts) != 0 {
		t.Fatalf("after release: total %d, a %d, %d accounts; want all 0", total, a, len(b.accounts))
	}
}

// TestByteBudgetWaits: a reservation waits for a release instead of
// failing, and stops waiting when its context ends.
func TestByteBudgetWaits(t *testing.T) {
	t.Parallel()
	b := newByteBudget(2, 2, time.Hour)
	ctx := t.Context()
	if err := b.acquire(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var waitErr error
	go func() {
		defer wg.Done()
		waitErr = b.acquire(ctx, "b", 1)
	}()
	b.release("a", 2)
	wg.Wait()
	if waitErr != nil {
		t.Fatalf("waiting reservation failed after a release: %v", waitErr)
	}
	if err := b.acquire(ctx, "c", 1); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(cctx, "d", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire on a cancelled context: %v; want context.Canceled", err)
	}
}

// TestBufferGrant: small answers reserve nothing; larger ones reserve in
// whole chunks and give everything back.
func TestBufferGrant(t *testing.T) {
	t.Parallel()
	b := newByteBudget(8*budgetChunk, 8*budgetChunk, time.Millisecond)
	g := &bufferGrant{budget: b, account: "a"}
	ctx := t.Context()
	if c, err := g.need(ctx, budgetFree); err != nil || c != budgetFree || g.reserved != 0 {
		t.Fatalf("small answer: covered %d, reserved %d, %v; want %d, 0", c, g.reserved, err, budgetFree)
	}
	if c, err := g.need(ctx, budgetFree+1); err != nil || c != budgetChunk || g.reserved != budgetChunk {
		t.Fatalf("past the free part: covered %d, reserved %d, %v; want one chunk", c, g.reserved, err)
	}
	if c, err := g.need(ctx, 3*budgetChunk+5); err != nil || c != 4*budgetChunk {
		t.Fatalf("growing: covered %d, %v; want 4 chunks", c, err)
	}
	if _, err := g.need(ctx, 9*budgetChunk); apierr.As(err) == nil || apierr.As(err).Status != http.StatusTooManyRequests {
		t.Fatalf("past the budget: %v; want 429", err)
	}
	g.release()
	g.release()
	if total, _ := b.inUse("a"); total != 0 {
		t.Fatalf("%d bytes still reserved after release", total)
	}
}

// Answers that each hold part of the budget while they grow never wait for
// one another: with room for one and a third answers, many concurrent
// three-chunk answers still get some through (the oldest holder waits,
// the others give way), and every one ends with an answer or a 429.
func TestBufferGrantsCannotDeadlock(t *testing.T) {
	t.Parallel()
	b := newByteBudget(4*budgetChunk, 4*budgetChunk, 5*time.Second)
	const n = 24
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		done    int
		refused int
	)
	gate := make(chan struct{})
	for range n {
		wg.Go(func() {
			g := &bufferGrant{budget: b, account: "a"}
			defer g.release()
			<-gate
			for size := int64(budgetChunk); size <= 3*budgetChunk; size += budgetChunk / 2 {
				if _, err := g.need(t.Context(), size); err != nil {
					if e := apierr.As(err); e == nil || e.Status != http.StatusTooManyRequests {
						t.Errorf("need(%d): %v, want a 429", size, err)
					}
					mu.Lock()
					refused++
					mu.Unlock()
					return
				}
				runtime.Gosched()
			}
			mu.Lock()
			done++
			mu.Unlock()
		})
	}
	close(gate)
	wg.Wait()
	if done == 0 || done+refused != n {
		t.Fatalf("%d answers finished, %d refused of %d; want some finished and every one ended", done, refused, n)
	}
	if total, acct := b.inUse("a"); total != 0 || acct != 0 {
		t.Fatalf("%d bytes (%d of the account) still reserved after every answer ended", total, acct)
	}
	if len(b.holders) != 0 || b.yield {
		t.Fatalf("holders %v, yield %v after every answer ended", b.holders, b.yield)
	}
}
