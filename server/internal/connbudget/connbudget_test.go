package connbudget

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

func owners(m map[string]string) func(context.Context, string) (string, error) {
	return func(_ context.Context, db string) (string, error) {
		if a, ok := m[db]; ok {
			return a, nil
		}
		return "", errors.New("unknown database")
	}
}

func mustAcquire(t *testing.T, b *Budget, db string) func() {
	t.Helper()
	rel, err := b.Acquire(t.Context(), db)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", db, err)
	}
	return rel
}

func TestShareIsTheAccountCap(t *testing.T) {
	t.Parallel()
	b := New(Config{Max: 10, PerAccount: 3, Wait: -1, Lookup: owners(map[string]string{"a1": "A", "a2": "A", "v1": "V"})})
	var rels []func()
	// Account A's two databases share one budget of 3.
	for _, db := range []string{"a1", "a2", "a1"} {
		rels = append(rels, mustAcquire(t, b, db))
	}
	_, err := b.Acquire(t.Context(), "a2")
	var be *Error
	if !errors.As(err, &be) || !be.Account || be.InUse != 3 || be.Limit != 3 || be.SQLState() != "53300" {
		t.Fatalf("4th slot of A: err %v (%#v), want an account refusal 3 of 3", err, be)
	}
	if !strings.Contains(err.Error(), "3 of 3") || !strings.Contains(err.Error(), "close idle connections") {
		t.Fatalf("message does not name the limit and the remedy: %q", err)
	}
	// Another account is not affected.
	rels = append(rels, mustAcquire(t, b, "v1"))
	if s := b.Stats(); s.InUse != 4 || s.Accounts["A"] != 3 || s.Accounts["V"] != 1 {
		t.Fatalf("stats %+v, want 4 in use (A 3, V 1)", s)
	}
	rels[0]()
	rels[0]() // a second call does nothing
	rels = append(rels, mustAcquire(t, b, "a2"))
	for _, r := range rels[1:] {
		r()
	}
	if s := b.Stats(); s.InUse != 0 || len(s.Accounts) != 0 || s.Peak != 4 {
		t.Fatalf("after releasing everything: %+v, want 0 in use, peak 4", s)
	}
}

func TestTotalCap(t *testing.T) {
	t.Parallel()
	b := New(Config{Max: 4, PerAccount: 3, Wait: -1})
	var rels []func()
	for _, db := range []string{"x", "x", "x", "y"} {
		rels = append(rels, mustAcquire(t, b, db))
	}
	_, err := b.Acquire(t.Context(), "z")
	var be *Error
	if !errors.As(err, &be) || be.Account || be.Limit != 4 || !IsOver(err) {
		t.Fatalf("over the total: %v, want a server refusal with limit 4", err)
	}
	if !strings.Contains(err.Error(), "all 4 database connections") {
		t.Fatalf("message %q does not name the total", err)
	}
	for _, r := range rels {
		r()
	}
	if got := b.Stats().InUse; got != 0 {
		t.Fatalf("in use %d after release, want 0", got)
	}
}

func TestWaitGetsAFreedSlot(t *testing.T) {
	t.Parallel()
	b := New(Config{Max: 1, Wait: time.Minute})
	rel := mustAcquire(t, b, "x")
	got := make(chan error, 1)
	go func() {
		r, err := b.Acquire(context.Background(), "y")
		if err == nil {
			r()
		}
		got <- err
	}()
	rel()
	if err := <-got; err != nil {
		t.Fatalf("waiting Acquire: %v, want the freed slot", err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	b := New(Config{Max: 1, Wait: time.Hour})
	rel := mustAcquire(t, b, "x")
	defer rel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Acquire(ctx, "y"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestReclaim: a refusal by the account's share reclaims that account's idle
// connections only; a refusal by the total reclaims everyone's; a reclaimed
// connection's slot goes to the waiter.
func TestReclaim(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	idle := map[string][]func(){} // idle "connections" per database
	var calls atomic.Int32
	b := New(Config{Max: 100, PerAccount: 2, Wait: time.Minute,
		Lookup: owners(map[string]string{"a1": "A", "a2": "A", "v1": "V"}),
		Reclaim: func(match func(string) bool) int {
			calls.Add(1)
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for db, rels := range idle {
				if match(db) {
					for _, r := range rels {
						r()
						n++
					}
					delete(idle, db)
				}
			}
			return n
		}})
	mu.Lock()
	idle["a1"] = []func(){mustAcquire(t, b, "a1"), mustAcquire(t, b, "a1")}
	idle["v1"] = []func(){mustAcquire(t, b, "v1")}
	mu.Unlock()
	rel := mustAcquire(t, b, "a2") // waits for a reclaimed slot of A
	defer rel()
	if calls.Load() == 0 {
		t.Fatal("Reclaim was not called")
	}
	mu.Lock()
	_, vIdle := idle["v1"]
	_, aIdle := idle["a1"]
	mu.Unlock()
	if !vIdle || aIdle {
		t.Fatalf("after A's refusal: A's idle reclaimed %v (want true), V's kept %v (want true)", !aIdle, vIdle)
	}
	if s := b.Stats(); s.Accounts["A"] != 1 || s.Accounts["V"] != 1 {
		t.Fatalf("stats %+v, want A 1, V 1", s)
	}
}

// TestHighWaterReclaims: a grant that takes the budget near full reclaims
// the idle connections of the heavy accounts without anyone being refused.
func TestHighWaterReclaims(t *testing.T) {
	t.Parallel()
	called := make(chan struct{}, 10)
	b := New(Config{Max: 10, PerAccount: 10, Wait: -1, Reclaim: func(match func(string) bool) int {
		if !match("x") || match("y") {
			t.Error("a high-water reclaim must cover the accounts holding half their share or more, and only them")
		}
		called <- struct{}{}
		return 0
	}})
	var rels []func()
	for range 8 {
		rels = append(rels, mustAcquire(t, b, "x"))
	}
	if len(called) != 0 {
		t.Fatalf("reclaimed at 8 of 10")
	}
	rels = append(rels, mustAcquire(t, b, "x"))
	<-called // blocks until the reclaim at 9 of 10 ran (the test's deadline bounds it)
	for _, r := range rels {
		r()
	}
}

func TestLookupCached(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	b := New(Config{Max: 5, Lookup: func(_ context.Context, db string) (string, error) {
		n.Add(1)
		if db == "broken" {
			return "", errors.New("metadata down")
		}
		return "acct-" + db, nil
	}})
	for range 3 {
		if a := b.Account(t.Context(), "d"); a != "acct-d" {
			t.Fatalf("Account(d) = %q", a)
		}
	}
	if n.Load() != 1 {
		t.Fatalf("Lookup called %d times for one database, want 1 (cached)", n.Load())
	}
	if a := b.Account(t.Context(), "broken"); a != "db:broken" {
		t.Fatalf("a failed lookup counts the database as its own account: got %q", a)
	}
	b.Account(t.Context(), "broken")
	if n.Load() != 3 {
		t.Fatalf("failed lookups must not be cached: %d calls, want 3", n.Load())
	}
}

// TestConcurrentChurn: many goroutines acquiring and releasing never exceed
// the caps and leave the budget at zero.
func TestConcurrentChurn(t *testing.T) {
	t.Parallel()
	b := New(Config{Max: 7, PerAccount: 3, Wait: -1})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			db := []string{"a", "b", "c"}[g%3]
			for range 500 {
				rel, err := b.Acquire(context.Background(), db)
				if err != nil {
					continue
				}
				s := b.Stats()
				if s.InUse > 7 || s.Accounts["db:"+db] > 3 {
					t.Errorf("caps exceeded: %+v", s)
				}
				rel()
			}
		})
	}
	wg.Wait()
	if s := b.Stats(); s.InUse != 0 || len(s.Accounts) != 0 || s.Peak > 7 {
		t.Fatalf("after churn: %+v, want 0 in use and peak at most 7", s)
	}
}

// TestHTTPAnswer: a refusal, however wrapped (pgconn wraps dial errors),
// is answered 429 too_many_connections for the account's share and 503 for
// the total, with SQLSTATE 53300 and Retry-After.
func TestHTTPAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    *Error
		status int
	}{{&Error{Account: true, InUse: 10, Limit: 10}, 429}, {&Error{InUse: 40, Limit: 40}, 503}} {
		e := apierr.As(fmt.Errorf("failed to connect: %w", errors.Join(errors.New("dial error"), tc.err)))
		if e.Status != tc.status || e.Code != "too_many_connections" || e.SQLState != "53300" || e.RetryAfter != time.Second || e.Message != tc.err.Error() {
			t.Errorf("apierr.As(%v) = %+v, want %d too_many_connections", tc.err, e, tc.status)
		}
	}
}

// Readers of an account's databases (a public database's readers among
// them) share half its share, apart from it: they can never use up the
// owner's own connections.
func TestReadersCannotTakeTheOwnersShare(t *testing.T) {
	t.Parallel()
	b := New(Config{Max: 20, PerAccount: 4, Wait: -1, Lookup: owners(map[string]string{"pub": "O"})})
	var rels []func()
	for range 2 {
		rel, err := b.AcquireReader(t.Context(), "pub")
		if err != nil {
			t.Fatalf("reader slot: %v", err)
		}
		rels = append(rels, rel)
	}
	_, err := b.AcquireReader(t.Context(), "pub")
	var be *Error
	if !errors.As(err, &be) || !be.Readers || be.InUse != 2 || be.Limit != 2 || be.HTTPStatus() != 429 {
		t.Fatalf("3rd reader slot: err %v (%#v), want a readers' refusal 2 of 2", err, be)
	}
	if !strings.Contains(err.Error(), "readers") || !strings.Contains(err.Error(), "2 of 2") {
		t.Fatalf("message does not say the readers' share is full: %q", err)
	}
	// The owner still has its whole share.
	for range 4 {
		rels = append(rels, mustAcquire(t, b, "pub"))
	}
	if s := b.Stats(); s.InUse != 6 || s.Accounts["O"] != 4 {
		t.Fatalf("stats %+v, want 6 in use, the owner 4", s)
	}
	for _, r := range rels {
		r()
	}
	if s := b.Stats(); s.InUse != 0 {
		t.Fatalf("stats %+v after releasing everything, want 0 in use", s)
	}
}

func TestClustersHaveTheirOwnBudget(t *testing.T) {
	t.Parallel()
	place := map[string]string{"a1": "default", "b1": "two", "b2": "two", "c1": "three"}
	var sizeCalls atomic.Int32
	b := New(Config{Max: 3, PerAccount: 3, Wait: -1,
		Lookup: owners(map[string]string{"a1": "A", "b1": "B", "b2": "B2", "c1": "C"}),
		Cluster: func(_ context.Context, db string) (string, error) {
			if c, ok := place[db]; ok {
				return c, nil
			}
			return "", errors.New("unknown database")
		},
		Size: func(_ context.Context, c string) (int, int, error) {
			sizeCalls.Add(1)
			if c == "three" {
				return 0, 0, errors.New("cluster three is down")
			}
			return 2, 0, nil // the share: derived, capped by the total
		}})
	// Cluster two's cap is 2 (its own size), shared by its databases.
	r1 := mustAcquire(t, b, "b1")
	r2 := mustAcquire(t, b, "b2")
	_, err := b.Acquire(t.Context(), "b1")
	var be *Error
	if !errors.As(err, &be) || be.Account || be.Cluster != "two" || be.Limit != 2 || be.HTTPStatus() != 503 {
		t.Fatalf("3rd slot on cluster two: %v (%#v), want the cluster's total (2) refusing", err, be)
	}
	if !strings.Contains(err.Error(), "(two)") {
		t.Fatalf("the refusal does not name the full cluster: %q", err)
	}
	// The default cluster's databases are not affected: all 3 slots there.
	var rels []func()
	for range 3 {
		rels = append(rels, mustAcquire(t, b, "a1"))
	}
	if _, err := b.Acquire(t.Context(), "a1"); !IsOver(err) {
		t.Fatalf("4th slot on the default cluster: %v, want a refusal", err)
	}
	// Cluster two is not affected by the full default cluster.
	r1()
	rels = append(rels, mustAcquire(t, b, "b1"))
	// A cluster whose size cannot be read has the default cluster's limits.
	rels = append(rels, mustAcquire(t, b, "c1"))
	if m, _, own := b.Limits("three"); m != 3 || own {
		t.Fatalf("Limits(three) = %d, own %v; want the default's 3, not own", m, own)
	}
	if m, per, own := b.Limits("two"); m != 2 || per != 2 || !own {
		t.Fatalf("Limits(two) = %d, %d, own %v; want 2, 2, own", m, per, own)
	}
	s := b.Stats()
	if s.InUse != 6 || s.Clusters["two"].InUse != 2 || s.Clusters["default"].InUse != 3 || s.Clusters["three"].InUse != 1 {
		t.Fatalf("stats %+v", s)
	}
	r2()
	for _, r := range rels {
		r()
	}
	if s := b.Stats(); s.InUse != 0 {
		t.Fatalf("in use after releasing everything: %+v", s)
	}
	if n := sizeCalls.Load(); n != 2 {
		t.Fatalf("Size asked %d times, want once per cluster (the failed one retried only after a pause)", n)
	}
}
