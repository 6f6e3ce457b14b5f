package store

import (
	"sync"
	"testing"
	"time"
)

func loginKeys(user, addr string, perUser, perAddr int) []LoginKey {
	return []LoginKey{{Key: user, Limit: perUser, ClearedBySuccess: true}, {Key: addr, Limit: perAddr}}
}

// TestLoginLimits: the limiter's counting (failures, successes, attempts
// never verified) on the shared table.
func TestLoginLimits(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	const perUser, perAddr = 2, 3
	keys := func(u, a string) []LoginKey { return loginKeys("u:"+u, "a:"+a, perUser, perAddr) }
	mustReserve := func(u, a string) *LoginReservation {
		t.Helper()
		r, wait, busy, err := s.ReserveLogin(ctx, keys(u, a), time.Hour)
		if err != nil || r == nil {
			t.Fatalf("reserve(%s, %s) refused: wait %v, busy %v, err %v", u, a, wait, busy, err)
		}
		return r
	}
	settle := func(r *LoginReservation, o LoginOutcome) {
		t.Helper()
		if err := s.SettleLogin(ctx, r, o); err != nil {
			t.Fatal(err)
		}
	}
	count := func(key string) int {
		t.Helper()
		n, _, err := s.LoginLimitCount(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// versions lists every row version of the table: a write changes it.
	versions := func() string {
		t.Helper()
		var v string
		if err := s.DB.QueryRow(ctx, `SELECT coalesce(string_agg(key || ' ' || xmin::text || ' ' || ctid::text, ', ' ORDER BY key), '') FROM login_limits`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	settle(mustReserve("a", "1"), LoginFailed)
	settle(mustReserve("a", "1"), LoginFailed)
	rows := versions()
	if r, w, busy, err := s.ReserveLogin(ctx, keys("a", "2"), time.Hour); err != nil || r != nil || w <= 0 || w > time.Hour || busy {
		t.Fatalf("user not limited after 2 failures: %v, wait %v, busy %v, err %v", r, w, busy, err)
	}
	if after := versions(); after != rows {
		t.Fatalf("a refused attempt wrote: rows %s became %s", rows, after)
	}
	if count("a:2") != 0 {
		t.Fatal("a limited attempt was counted against its address")
	}
	settle(mustReserve("b", "2"), LoginNotVerified) // given back
	settle(mustReserve("b", "1"), LoginFailed)
	if r, w, _, _ := s.ReserveLogin(ctx, keys("c", "1"), time.Hour); r != nil || w <= 0 {
		t.Fatal("address not limited after 3 failures")
	}
	if count("u:c") != 0 {
		t.Fatal("an attempt refused for its address was counted against its user")
	}
	settle(mustReserve("c", "2"), LoginFailed)
	settle(mustReserve("c", "2"), LoginSucceeded) // forgets the user's failure, gives the address its slot back
	settle(mustReserve("c", "2"), LoginFailed)
	if got := count("u:c"); got != 1 {
		t.Fatalf("user count %d after failure, success, failure; want 1", got)
	}
	if got := count("a:2"); got != 2 {
		t.Fatalf("address count %d after a cancel, 2 failures and a success; want 2", got)
	}

	// Windows end: a key is free again, a reservation from the old window
	// does not change the new one, and the sweep deletes ended rows.
	short := func() []LoginKey { return loginKeys("u:short", "a:short", 1, 100) }
	r1, _, _, err := s.ReserveLogin(ctx, short(), 200*time.Millisecond)
	if err != nil || r1 == nil {
		t.Fatalf("reserve: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	r2, _, _, err := s.ReserveLogin(ctx, short(), time.Hour)
	if err != nil || r2 == nil {
		t.Fatalf("a key was still limited after its window ended (err %v)", err)
	}
	settle(r1, LoginNotVerified)
	if n, inFlight, _ := s.LoginLimitCount(ctx, "u:short"); n != 1 || inFlight != 1 {
		t.Fatalf("new window: n %d in flight %d after the old window's reservation settled; want 1, 1", n, inFlight)
	}
	settle(r2, LoginFailed)
	if _, err := s.DB.Exec(ctx, `UPDATE login_limits SET reset_at = now() - interval '1 second' WHERE key LIKE '%short'`); err != nil {
		t.Fatal(err)
	}
	var before, after int
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM login_limits`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	n, err := s.SweepLoginLimits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM login_limits`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if n != 2 || after != before-2 {
		t.Fatalf("sweep deleted %d rows (%d → %d); want the 2 ended ones", n, before, after)
	}
}

// TestLoginLimitsConcurrentReplicas: N concurrent attempts through two
// stores on the same metadata database (two replicas) reserve exactly the
// limit, even when one of them is the right password and succeeds while
// the others are in flight.
func TestLoginLimitsConcurrentReplicas(t *testing.T) {
	t.Parallel()
	a := openTest(t)
	b, err := Open(t.Context(), Options{AdminURL: testURL(t), MetadataDB: a.MetadataDB(), Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx := t.Context()
	const n, perUser = 40, 5
	keys := loginKeys("u:victim", "a:1", perUser, 1000)
	var (
		mu       sync.Mutex
		admitted []*LoginReservation
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, _, _, err := st.ReserveLogin(ctx, keys, time.Hour)
			if err != nil {
				t.Error(err)
				return
			}
			if r != nil {
				mu.Lock()
				admitted = append(admitted, r)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(admitted) != perUser {
		t.Fatalf("%d of %d concurrent attempts admitted; want exactly the limit %d", len(admitted), n, perUser)
	}
	// The right password settles first while the others are in flight:
	// no slot comes free for the rest of the burst.
	if err := a.SettleLogin(ctx, admitted[0], LoginSucceeded); err != nil {
		t.Fatal(err)
	}
	if r, wait, busy, err := b.ReserveLogin(ctx, keys, time.Hour); err != nil || r != nil || wait != 0 || !busy {
		t.Fatalf("a success racing other attempts: reserve = %v, wait %v, busy %v, err %v; want a busy refusal", r, wait, busy, err)
	}
	for _, r := range admitted[1:] {
		if err := b.SettleLogin(ctx, r, LoginFailed); err != nil {
			t.Fatal(err)
		}
	}
	if r, wait, busy, err := a.ReserveLogin(ctx, keys, time.Hour); err != nil || r != nil || wait <= 0 || busy {
		t.Fatalf("after the limit of failures: reserve = %v, wait %v, busy %v, err %v; want rate limited", r, wait, busy, err)
	}
	if got, _, _ := a.LoginLimitCount(ctx, "a:1"); got != perUser-1 {
		t.Fatalf("address count %d; want %d (the success given back)", got, perUser-1)
	}
}
