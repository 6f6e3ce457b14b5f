package stress

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestReplicaLoginLimits: three replicas share the login rate limits.
// Failed logins for one user spread over the replicas add up to the
// per-user limit (5), after which every replica answers 429 rate_limited
// with Retry-After, even to the right password; a success clears the
// user's failures on every replica; and 40 concurrent guesses spread over
// the three replicas get at most the limit verified.
func TestReplicaLoginLimits(t *testing.T) {
	t.Parallel()
	tried(t, "failed logins spread over three replicas")
	const perUser = 5 // api.Options default
	a := start(t, bitdtest.SharedSecret())
	b := start(t, bitdtest.Replica(a))
	c := start(t, bitdtest.Replica(a))
	reps := []*client{newClient(a.Endpoint, ""), newClient(b.Endpoint, ""), newClient(c.Endpoint, "")}
	login := func(cl *client, user, pass string) result {
		t.Helper()
		return cl.do(t, "POST", "/auth/v1/login", map[string]any{"username": user, "password": pass})
	}
	wantLimited := func(r result, what string) {
		t.Helper()
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != http.StatusTooManyRequests || r.str("code") != "rate_limited" ||
			!strings.HasPrefix(r.str("error"), "too many failed logins; try again in ") || err != nil || ra < 1 || ra > 60 {
			t.Fatalf("%s: %d %s (Retry-After %q); want 429 rate_limited with Retry-After of at most the 60 s window",
				what, r.Status, r.Raw, r.Header.Get("Retry-After"))
		}
	}

	user, pass := "victim"+randSuffix(), "pw-"+randSuffix()+randSuffix()
	remember(pass)
	a.NewUser(t, user, pass)
	// 2 failures on a, 2 on b, 1 on c: 5 in all.
	for i, cl := range []*client{reps[0], reps[0], reps[1], reps[1], reps[2]} {
		if r := login(cl, user, "wrong"+strconv.Itoa(i)); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s; want 401 (not limited yet)", i+1, r.Status, r.Raw)
		}
	}
	for i, cl := range reps {
		wantLimited(login(cl, user, "wrong"), fmt.Sprintf("a sixth failure on replica %d", i+1))
		wantLimited(login(cl, user, pass), fmt.Sprintf("the right password on replica %d after 5 failures", i+1))
	}
	record(t, "5 failed logins for one user spread 2/2/1 over three replicas, then a 6th attempt on each",
		"429 rate_limited with Retry-After on every replica, also for the right password")

	// A success on one replica clears the user's failures for all.
	user2, pass2 := "clears"+randSuffix(), "pw-"+randSuffix()+randSuffix()
	remember(pass2)
	a.NewUser(t, user2, pass2)
	for i := range perUser - 1 {
		if r := login(reps[i%3], user2, "wrong"); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, r.Status, r.Raw)
		}
	}
	if r := login(reps[2], user2, pass2); r.Status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("the right password after %d failures: %d %.200s", perUser-1, r.Status, r.Raw)
	} else {
		remember(r.str("access_token"), r.str("refresh_token"))
	}
	for i := range perUser {
		if r := login(reps[i%3], user2, "wrong"); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d after a success: %d %s; want 401 (the success cleared the count)", i+1, r.Status, r.Raw)
		}
	}
	wantLimited(login(reps[1], user2, "wrong"), "after 5 failures following a success")
	record(t, "4 failures, a success on another replica, then 5 failures spread over the replicas",
		"all 5 answered 401 (the success cleared the count everywhere), the next 429")

	// A burst spread over the replicas.
	user3, pass3 := "burst"+randSuffix(), "pw-"+randSuffix()+randSuffix()
	remember(pass3)
	a.NewUser(t, user3, pass3)
	const burst = 40
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		verified, refused int
		others            []string
	)
	gate := make(chan struct{})
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			pw := "wrong" + strconv.Itoa(i)
			if i == burst/2 {
				pw = pass3
			}
			r, err := reps[i%3].doE("POST", "/auth/v1/login", map[string]any{"username": user3, "password": pw})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				others = append(others, err.Error())
			case r.Status == http.StatusTooManyRequests && (r.str("code") == "rate_limited" || r.str("code") == "login_busy"):
				refused++
			case r.Status == http.StatusOK || r.Status == http.StatusUnauthorized:
				verified++
			default:
				others = append(others, fmt.Sprintf("%d %.200s", r.Status, r.Raw))
			}
		}()
	}
	close(gate)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected answers: %v", others)
	}
	if verified == 0 || verified > perUser || refused != burst-verified {
		t.Fatalf("%d of %d concurrent guesses spread over three replicas were verified, %d refused; want 1 to %d verified (the per-user limit), the rest refused",
			verified, burst, refused, perUser)
	}
	record(t, fmt.Sprintf("%d concurrent guesses at one user spread over three replicas (one right)", burst),
		fmt.Sprintf("%d verified (limit %d), %d refused with 429 before verification", verified, perUser, refused))
}
