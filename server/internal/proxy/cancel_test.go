package proxy

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5/pgconn"
)

// memRelay delivers relay messages to every registered server, as bitd's
// NOTIFY does to every replica.
type memRelay struct {
	mu    sync.Mutex
	subs  []*Server
	count int
}

func (m *memRelay) Publish(_ context.Context, msg string) error {
	m.mu.Lock()
	subs := append([]*Server(nil), m.subs...)
	m.count++
	m.mu.Unlock()
	for _, s := range subs {
		s.RelayedCancel(msg)
	}
	return nil
}

func rawCancel(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := binary.BigEndian.AppendUint32(nil, 16)
	b = binary.BigEndian.AppendUint32(b, codeCancel)
	b = binary.BigEndian.AppendUint32(b, pid)
	if _, err := c.Write(append(b, secret...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c) // the proxy closes once it has handled it
}

// TestCancelRelay: two proxies (replicas) share a cancel key and a relay;
// a CancelRequest sent to the one that does not hold the session cancels
// the query, one with a wrong secret does not, and a proxy with another
// key (another server secret) cannot cancel through the relay.
func TestCancelRelay(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	relay := &memRelay{}
	ck := DeriveCancelKey([]byte("0123456789abcdef0123456789abcdef"))
	srvA, addrA := startProxy(t, Config{DevTLS: true, CancelRelay: relay, CancelKey: ck}, auth)
	srvB, addrB := startProxy(t, Config{DevTLS: true, CancelRelay: relay, CancelKey: ck}, auth)
	srvC, addrC := startProxy(t, Config{DevTLS: true, CancelRelay: relay, CancelKey: DeriveCancelKey([]byte("another secret, another platform"))}, auth)
	relay.subs = []*Server{srvA, srvB, srvC}

	c, err := connect(t, addrA, key, testDB, "require")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.WithoutCancel(t.Context()))
	pid, secret := c.PgConn().PID(), c.PgConn().SecretKey()
	tag := "relay_" + pgtest.RandHex(4)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(t.Context(), "SELECT pg_sleep(30) /* "+tag+" */")
		done <- err
	}()
	waitQueryRunning(t, f, tag)

	wrong := append([]byte(nil), secret...)
	wrong[0] ^= 0x80
	rawCancel(t, addrB, pid, wrong)
	rawCancel(t, addrC, pid, secret) // right key data, wrong server secret
	if got := srvA.Stats().CancelsRelayedIn; got != 0 {
		t.Fatalf("%d relayed cancels with a wrong secret or key cancelled a session", got)
	}
	select {
	case err := <-done:
		t.Fatalf("the query ended after cancels with a wrong secret or key: %v", err)
	case <-time.After(time.Second):
	}

	rawCancel(t, addrB, pid, secret)
	select {
	case err := <-done:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("query ended with %v; want 57014", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("a cancel request sent to the other proxy did not cancel the query")
	}
	if a, b := srvA.Stats(), srvB.Stats(); a.CancelsRelayedIn != 1 || b.CancelsRelayed != 2 || a.CancelsRelayed != 0 {
		t.Fatalf("counters: A relayed in %d, out %d; B out %d; want 1, 0, 2", a.CancelsRelayedIn, a.CancelsRelayed, b.CancelsRelayed)
	}
}

// TestRelayedCancelMessages: malformed messages, the server's own and ones
// for unknown pids do nothing; the rate cap holds.
func TestRelayedCancelMessages(t *testing.T) {
	t.Parallel()
	s := New(Config{CancelKey: DeriveCancelKey([]byte("k")), CancelRelay: &memRelay{}}, nil, nil)
	ss := &session{srv: s, clientPID: 42}
	copy(ss.clientSecret[:], "abcd")
	s.byPID[42] = ss
	own := "c1 " + s.relay.origin + " 42 " + "AAAAAAAAAAAAAAAAAAAAAA"
	for _, m := range []string{"", "c1", "c2 x 42 AAAAAAAAAAAAAAAAAAAAAA", own, "c1 x 42 !!", "c1 x 99999999999 AAAAAAAAAAAAAAAAAAAAAA",
		"c1 x 43 AAAAAAAAAAAAAAAAAAAAAA", "c1 x 42 AAAAAAAAAAAAAAAAAAAAAA"} {
		if s.RelayedCancel(m) {
			t.Errorf("RelayedCancel(%q) = true", m)
		}
	}
	right := "c1 x 42 " + base64.RawURLEncoding.EncodeToString(cancelMAC(s.cfg.CancelKey, 42, []byte("abcd")))
	if !s.RelayedCancel(right) {
		t.Errorf("RelayedCancel(%q) with the session's mac = false", right)
	}
	r := newRelayState()
	now := time.Unix(1000, 0)
	for i := range relayRate {
		if !r.allow(now) {
			t.Fatalf("message %d refused under the cap", i+1)
		}
	}
	if r.allow(now) {
		t.Fatal("the cap let one more through in the same second")
	}
	if !r.allow(now.Add(time.Second)) {
		t.Fatal("the next second is still capped")
	}
}

// FuzzRelayedCancel: no relay message without the key's MAC cancels a
// session, and none panics.
func FuzzRelayedCancel(f *testing.F) {
	f.Add("c1 x 42 AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("c1 x 42 " + base64.RawURLEncoding.EncodeToString(cancelMAC(DeriveCancelKey([]byte("other")), 42, []byte("abcd"))))
	f.Add("c1  42  ")
	s := New(Config{CancelKey: DeriveCancelKey([]byte("k")), CancelRelay: &memRelay{}}, nil, nil)
	ss := &session{srv: s, clientPID: 42}
	copy(ss.clientSecret[:], "abcd")
	s.byPID[42] = ss
	f.Fuzz(func(t *testing.T, msg string) {
		if s.RelayedCancel(msg) {
			t.Fatalf("RelayedCancel(%q) cancelled without the MAC", msg)
		}
	})
}
