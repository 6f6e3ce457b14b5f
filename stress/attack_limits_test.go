package stress

// Memory, logins and slow clients: a hostile tenant tries to exhaust bitd's
// memory with buffered answers, races the login limiter, and holds HTTP
// connections open with slow headers and bodies.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestAttackBufferedMemory: one attacker runs many concurrent buffered
// queries of ~3 MB each (each under the per-answer cap). Past the account's
// memory budget they get 429 with the advice to stream; another tenant's
// queries answer 200 meanwhile, and bitd's peak resident size stays within
// a bound derived from the configured budget.
func TestAttackBufferedMemory(t *testing.T) {
	t.Parallel()
	const (
		mib        = 1 << 20
		perAnswer  = 4 * mib
		perAccount = 8 * mib
		total      = 16 * mib
		attackers  = 48
	)
	s := start(t, limitsArgs("--max-result-bytes", perAnswer, "--max-buffered-bytes", total,
		"--max-buffered-bytes-per-account", perAccount))
	attacker := newClient(s.Endpoint, s.APIKey)
	victim, _ := otherUser(t, s, "victim")
	adb := attacker.createDB(t, "hog", true)
	vdb := victim.createDB(t, "calm", true)
	victim.mustQuery(t, vdb, "select 1")
	baseline := rss(s.Pid(), "VmHWM")
	if baseline == 0 {
		t.Fatal("cannot read bitd's VmHWM from /proc")
	}

	// ~3 MB of rows, then 3 s of sleep while bitd holds them: longer than
	// the 2 s a reservation waits, so the account's budget stays taken.
	hog := "select repeat('x', 1000) as v from generate_series(1, 3000) union all select pg_sleep(3)::text"
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		codes     = map[string]int{}
		ok        int
		advice    string
		unexpects []string
	)
	for range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := attacker.doE("POST", "/v2beta/query", map[string]any{"database_name": adb, "query_string": hog})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				unexpects = append(unexpects, err.Error())
			case r.Status == 200:
				ok++
			case r.Status == http.StatusTooManyRequests:
				codes[r.str("code")]++
				if r.str("code") == "buffer_limit_reached" {
					advice = r.str("error")
				}
			default:
				unexpects = append(unexpects, fmt.Sprintf("%d %.200s", r.Status, r.Raw))
			}
		}()
	}
	// The victim meanwhile: a small query and a 3 MB answer of its own.
	time.Sleep(500 * time.Millisecond) // let the attack take the budget (not a timing assertion)
	if r := victim.query(t, vdb, "select 1"); r.Status != 200 {
		t.Errorf("victim's select 1 during the attack: %d %s", r.Status, r.Raw)
	}
	if r := victim.query(t, vdb, "select repeat('y', 1000) from generate_series(1, 3000)"); r.Status != 200 {
		t.Errorf("victim's 3 MB answer during the attack: %d %.300s", r.Status, r.Raw)
	}
	wg.Wait()
	peak := rss(s.Pid(), "VmHWM")
	if len(unexpects) > 0 {
		t.Fatalf("attacker got answers other than 200 and 429: %v", unexpects)
	}
	if codes["buffer_limit_reached"] == 0 {
		t.Fatalf("no attacker query was refused by the memory budget (%d answered 200, 429 codes %v)", ok, codes)
	}
	if !strings.Contains(advice, "application/x-ndjson") || !strings.Contains(advice, "--max-buffered-bytes-per-account") {
		t.Fatalf("429 message does not name the limit and the way around it: %q", advice)
	}
	if ok == 0 {
		t.Fatalf("no attacker query answered at all: the budget refuses even what fits (429 codes %v)", codes)
	}
	// Live bytes are bounded by the total budget (plus 64 KiB per answer in
	// progress); the factor covers slice growth, GC headroom and the copies
	// net/http and pgx make. Measured: about +20 MiB with the budget, about
	// +90 MiB without it (the connection pools then bound the attack).
	bound := baseline + 3*total/1024
	if peak > bound {
		t.Fatalf("bitd's peak RSS %d KiB after the attack; want at most %d KiB (baseline %d KiB + 3 × the %d MiB budget)",
			peak, bound, baseline, total/mib)
	}
	record(t, fmt.Sprintf("%d concurrent buffered ~3 MB answers from one account (budget %d MiB per account, %d MiB in total)", attackers, perAccount/mib, total/mib),
		fmt.Sprintf("%d answered, %d refused with 429 buffer_limit_reached (advice: stream or export); another tenant's queries 200; peak RSS %d MiB (baseline %d MiB)",
			ok, codes["buffer_limit_reached"], peak/1024, baseline/1024))
}

// limitsArgs turns flag names and values into a bitdtest.Args option.
func limitsArgs(kv ...any) bitdtest.Option {
	a := make([]string, 0, len(kv))
	for _, v := range kv {
		a = append(a, fmt.Sprint(v))
	}
	return bitdtest.Args(a...)
}

// TestAttackLoginBurst: 40 concurrent guesses at one user's password (one
// of them right) get at most the per-user limit past the limiter; the rest
// are refused with 429 before their password is checked. Then 40
// concurrent guesses at 40 user names from one address get at most the
// per-address limit verified.
func TestAttackLoginBurst(t *testing.T) {
	t.Parallel()
	const (
		burst   = 40
		perUser = 5  // api.Options defaults
		perAddr = 20 // (all test clients share 127.0.0.1)
	)
	s := start(t)
	user, pass := "target"+randSuffix(), "pw-"+randSuffix()+randSuffix()
	remember(pass)
	s.NewUser(t, user, pass)
	anon := newClient(s.Endpoint, "")
	succeeded := 0 // verified and right: a success gives the address its slot back

	fire := func(body func(i int) map[string]any) (passed, limited int, others []string) {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		gate := make(chan struct{})
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				r, err := anon.doE("POST", "/auth/v1/login", body(i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					others = append(others, err.Error())
				case r.Status == http.StatusTooManyRequests:
					// rate_limited (the limit of failures is spent) or
					// login_busy (as many attempts in flight as the limit
					// allows): refused either way before verification.
					if code := r.str("code"); code == "rate_limited" || code == "login_busy" {
						limited++
					}
				case r.Status == 200 || r.Status == 401:
					passed++ // the password was verified
					if r.Status == 200 {
						succeeded++
					}
				default:
					others = append(others, fmt.Sprintf("%d %.200s", r.Status, r.Raw))
				}
				if strings.Contains(string(r.Raw), pass) {
					others = append(others, "the password is echoed in an answer")
				}
			}()
		}
		close(gate)
		wg.Wait()
		return passed, limited, others
	}

	passed, limited, others := fire(func(i int) map[string]any {
		pw := "wrong-" + fmt.Sprint(i)
		if i == burst/2 {
			pw = pass
		}
		return map[string]any{"username": user, "password": pw}
	})
	if len(others) > 0 {
		t.Fatalf("unexpected answers: %v", others)
	}
	if passed == 0 || passed > perUser {
		t.Fatalf("%d of %d concurrent guesses at one user were verified; want 1 to %d (the per-user limit)", passed, burst, perUser)
	}
	if limited == 0 {
		t.Fatalf("no guess was refused with 429 (rate_limited or login_busy)")
	}
	record(t, fmt.Sprintf("%d concurrent password guesses at one user (one right)", burst),
		fmt.Sprintf("%d verified (limit %d), %d refused with 429 before verification", passed, perUser, limited))

	addrPassed, addrLimited, others := fire(func(i int) map[string]any {
		return map[string]any{"username": fmt.Sprintf("nobody%d-%s", i, randSuffix()), "password": "wrong"}
	})
	if len(others) > 0 {
		t.Fatalf("unexpected answers: %v", others)
	}
	// The first burst's failures count against the address too (its one
	// right guess, if verified, does not: a success gives its slot back).
	if passed-succeeded+addrPassed > perAddr || addrLimited == 0 {
		t.Fatalf("%d + %d guesses from one address were verified, %d of them right (%d refused); want at most %d failures in all (the per-address limit)",
			passed, addrPassed, succeeded, addrLimited, perAddr)
	}
	record(t, fmt.Sprintf("%d concurrent guesses at %d user names from one address", burst, burst),
		fmt.Sprintf("%d verified (%d already spent, limit %d), %d refused with 429", addrPassed, passed, perAddr, addrLimited))
}

// TestAttackSlowClients: with 2 s HTTP timeouts, a client dribbling its
// header, one dribbling an ordinary body, one silent in the middle of an
// upload and one idle on a keep-alive connection are all disconnected
// (the slow body with 408 body_timeout), while an upload that keeps
// sending outlives the whole-body timeout.
func TestAttackSlowClients(t *testing.T) {
	t.Parallel()
	s := start(t, limitsArgs("--http-read-header-timeout", "2s", "--http-read-timeout", "2s", "--http-idle-timeout", "2s"))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "slow", true)
	host := strings.TrimPrefix(s.Endpoint, "http://")
	const giveUp = 90 * time.Second // far above the 2 s timeouts: not a timing assertion

	dial := func() net.Conn {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// closedBy drips one byte (or nothing) every 500 ms until the server
	// closes conn, and returns what the server sent.
	closedBy := func(conn net.Conn, drip string) (string, bool) {
		var got bytes.Buffer
		buf := make([]byte, 4096)
		end := time.Now().Add(giveUp)
		for time.Now().Before(end) {
			if drip != "" {
				_, _ = conn.Write([]byte(drip))
			}
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := conn.Read(buf)
			got.Write(buf[:n])
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if err != nil { // EOF or reset: closed by the server
				return got.String(), true
			}
		}
		return got.String(), false
	}
	// want408 dribbles (closedBy) until bitd closes conn, which must have
	// answered 408 body_timeout first.
	want408 := func(t *testing.T, conn net.Conn, dribble, what string) {
		t.Helper()
		got, closed := closedBy(conn, dribble)
		if !closed {
			t.Fatalf("%s was still open after %v", what, giveUp)
		}
		if !strings.HasPrefix(got, "HTTP/1.1 408") || !strings.Contains(got, "body_timeout") {
			t.Fatalf("%s: answered %.300q; want 408 body_timeout", what, got)
		}
	}

	t.Run("header", func(t *testing.T) {
		conn := dial()
		fmt.Fprintf(conn, "POST /v2beta/query HTTP/1.1\r\nHost: x\r\n")
		if _, closed := closedBy(conn, "X"); !closed {
			t.Fatalf("a header dribbled a byte at a time was still open after %v", giveUp)
		}
		record(t, "HTTP header sent one byte every 500 ms (2 s header timeout)", "connection closed by bitd")
	})
	t.Run("body", func(t *testing.T) {
		conn := dial()
		fmt.Fprintf(conn, "POST /v2beta/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", s.APIKey)
		want408(t, conn, " ", "a body dribbled a byte every 500 ms")
		record(t, "HTTP request body sent one byte every 500 ms (2 s read timeout)", "408 body_timeout, connection closed")
	})
	t.Run("upload", func(t *testing.T) {
		conn := dial()
		const boundary = "b0undary"
		head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"table_name\"\r\n\r\nt\r\n" +
			"--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\n"
		fmt.Fprintf(conn, "POST /v2beta/db/%s/import/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: 10000000\r\n\r\n%s",
			db, s.APIKey, boundary, head)
		// Keep sending for 3 × the whole-body timeout: an upload that keeps
		// arriving is not cut off.
		buf := make([]byte, 512)
		for i := range 12 {
			if _, err := fmt.Fprintf(conn, "%d,%d\n", i, i); err != nil {
				t.Fatalf("upload cut off while it kept sending (after %d lines): %v", i, err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := conn.Read(buf)
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("upload answered or closed while it kept sending (after %d lines): %q %v", i, buf[:n], err)
			}
		}
		want408(t, conn, "", "a silent upload")
		record(t, "upload that sends a line every 500 ms for 6 s, then nothing (2 s stall bound)", "kept open while sending; once silent: 408 body_timeout, connection closed")
	})
	t.Run("idle", func(t *testing.T) {
		conn := dial()
		fmt.Fprintf(conn, "GET /v2beta/db/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", s.APIKey)
		_ = conn.SetReadDeadline(time.Now().Add(giveUp))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v2beta/db/: %d", resp.StatusCode)
		}
		if _, closed := closedBy(conn, ""); !closed {
			t.Fatalf("an idle keep-alive connection was still open after %v", giveUp)
		}
		record(t, "keep-alive connection left idle (2 s idle timeout)", "closed by bitd")
	})
	if r := c.query(t, db, "select 1"); r.Status != 200 {
		t.Fatalf("normal client after the slow ones: %d %s", r.Status, r.Raw)
	}
}
