package stress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sleeper runs a 30 s query on conn, waits until PostgreSQL runs it, and
// returns the channel of its outcome.
func sleeper(t *testing.T, conn *pgx.Conn, admin *pgx.Conn) (query string, done <-chan error) {
	t.Helper()
	ctx := t.Context()
	query = "SELECT pg_sleep(30) /* cancel " + randSuffix() + " */"
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, query)
		errc <- err
	}()
	testwait.Eventually(t, 30*time.Second, func() error {
		if !running(t, admin, query) {
			return errors.New("the query never showed up in pg_stat_activity")
		}
		return nil
	})
	return query, errc
}

func running(t *testing.T, admin *pgx.Conn, query string) bool {
	t.Helper()
	var n int
	if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'`, query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// wantCancelled waits for the query's outcome: SQLSTATE 57014, well before
// the 30 s it would otherwise take.
func wantCancelled(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("%s: the query ended with %v; want SQLSTATE 57014 (query_canceled)", what, err)
		}
	case <-time.After(25 * time.Second):
		t.Fatalf("%s: the query was not cancelled", what)
	}
}

// TestReplicaCancel: a client connected through replica A runs a long
// query; its CancelRequest (the BackendKeyData A gave it) sent to replica
// B cancels the query, while cancel requests with a wrong secret or pid
// sent to B cancel nothing.
func TestReplicaCancel(t *testing.T) {
	t.Parallel()
	tried(t, "a wire-proxy cancel request sent to another replica")
	a := start(t, bitdtest.SharedSecret())
	b := start(t, bitdtest.Replica(a))
	if a.PGAddr == "" || b.PGAddr == "" {
		t.Fatal("bitd dev runs no wire proxy (BITKIT_PG_ADDR missing from demo.env)")
	}
	ctx := t.Context()
	db := newClient(a.Endpoint, a.APIKey).createDB(t, "cancel"+randSuffix(), true)
	admin, err := pgx.Connect(ctx, bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	conn, err := proxyConnect(ctx, a.PGAddr, db, a.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	pid, key := conn.PgConn().PID(), conn.PgConn().SecretKey()
	if len(key) != 4 {
		t.Fatalf("BackendKeyData secret of %d bytes; want 4 (protocol 3.0)", len(key))
	}

	query, done := sleeper(t, conn, admin)
	bad := append([]byte(nil), key...)
	bad[3] ^= 1
	bitdtest.SendCancel(t, b.PGAddr, pid, bad)
	bitdtest.SendCancel(t, b.PGAddr, pid^1, key)
	bitdtest.SendCancel(t, a.PGAddr, pid, bad)
	select {
	case err := <-done:
		t.Fatalf("the query ended after cancel requests with wrong keys: %v", err)
	case <-time.After(2 * time.Second):
	}
	if !running(t, admin, query) {
		t.Fatal("the query stopped running after cancel requests with wrong keys")
	}
	record(t, "cancel requests with a wrong secret or pid sent to the replica that does not hold the session (and to the one that does)",
		"nothing cancelled: the query kept running")

	started := time.Now()
	bitdtest.SendCancel(t, b.PGAddr, pid, key)
	wantCancelled(t, done, "a cancel request sent to the other replica")
	record(t, "a client's cancel request sent to a replica other than the one holding its wire session",
		fmt.Sprintf("the query is cancelled (57014) %v after the request, relayed over the metadata database's NOTIFY", time.Since(started).Round(time.Millisecond)))

	// The session goes on, and a cancel on the replica that holds it
	// still works.
	var one int
	err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "57014" {
		// PostgreSQL signals a backend it cancels twice (the process, then
		// its process group: postmaster.c, signal_child); on a loaded
		// machine the second signal can reach the next statement. That is
		// PostgreSQL's, for any client; once more.
		err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	}
	if err != nil || one != 1 {
		t.Fatalf("the session after the cancel: %v", err)
	}
	_, done = sleeper(t, conn, admin)
	bitdtest.SendCancel(t, a.PGAddr, pid, key)
	wantCancelled(t, done, "a cancel request sent to the replica that holds the session")
}

// TestReplicaCancelThroughHAProxy: HAProxy in TCP mode balances two
// replicas' wire ports round-robin, the production shape. pgx sends its
// cancel on a new connection, which HAProxy routes to the other replica
// than the session's; the query is cancelled all the same.
func TestReplicaCancelThroughHAProxy(t *testing.T) {
	t.Parallel()
	tried(t, "a cancel request that HAProxy routes to another replica")
	a := start(t, bitdtest.SharedSecret())
	b := start(t, bitdtest.Replica(a))
	ctx := t.Context()
	db := newClient(a.Endpoint, a.APIKey).createDB(t, "haproxy"+randSuffix(), true)

	lb, routed := startHAProxy(t, a.PGAddr, b.PGAddr)
	admin, err := pgx.Connect(ctx, bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	// Round robin: each session is followed by its cancel's connection,
	// which lands on the other replica. HAProxy's log names the replica of
	// every connection as it closes: the cancel's, then the session's.
	var holders []string
	seen := len(routed(1)) // startHAProxy's probe
	for i := range 2 {
		if i > 0 {
			// Use up one turn, so that the other replica holds this
			// round's session.
			c, err := net.Dial("tcp", lb)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			seen++
			routed(seen)
		}
		conn, err := proxyConnect(ctx, lb, db, a.APIKey)
		if err != nil {
			t.Fatalf("connect through HAProxy: %v", err)
		}
		_, done := sleeper(t, conn, admin)
		if err := conn.PgConn().CancelRequest(ctx); err != nil {
			t.Fatalf("pgx CancelRequest through HAProxy: %v", err)
		}
		wantCancelled(t, done, fmt.Sprintf("round %d: pgx's cancel request through HAProxy", i+1))
		conn.Close(context.WithoutCancel(ctx))
		seen += 2
		got := routed(seen)
		cancelTo, sessionOn := got[seen-2], got[seen-1]
		if cancelTo == sessionOn {
			t.Fatalf("round %d: HAProxy sent the cancel to %s, which holds the session: the test proves nothing (connections routed, in the order they closed: %v)", i+1, cancelTo, got)
		}
		holders = append(holders, sessionOn)
	}
	if holders[0] == holders[1] {
		t.Fatalf("both sessions were on %s; want one on each replica", holders[0])
	}
	record(t, "pgx's cancel request sent through HAProxy (TCP, round robin over two replicas), which routes it to the other replica",
		"the query is cancelled (57014), twice, once with each replica holding the session")
}

// startHAProxy runs HAProxy in TCP mode, round robin over backends, on a
// free loopback port, until the test ends. It returns its address and
// routed, which waits until HAProxy has logged n closed connections and
// returns the backend server ("bitd0", "bitd1", …) of each, in the order
// they closed.
func startHAProxy(t *testing.T, backends ...string) (addr string, routed func(n int) []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	var servers strings.Builder
	for i, be := range backends {
		fmt.Fprintf(&servers, "    server bitd%d %s\n", i, be)
	}
	conf := fmt.Sprintf(`global
    maxconn 200
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 2m
    timeout server 2m
frontend pg
    bind %s
    default_backend bitd
backend bitd
    balance roundrobin
%s`, addr, servers.String())
	logPath := bitdtest.StartHAProxy(t, conf, addr).Log
	routed = func(n int) []string {
		t.Helper()
		var servers []string
		testwait.Eventually(t, 20*time.Second, func() error {
			b, _ := os.ReadFile(logPath)
			servers = servers[:0]
			for _, f := range strings.Fields(string(b)) {
				if s, ok := strings.CutPrefix(f, "bitd/"); ok {
					servers = append(servers, s)
				}
			}
			if len(servers) < n {
				return fmt.Errorf("HAProxy logged %d connections, want %d:\n%s", len(servers), n, b)
			}
			return nil
		})
		return servers
	}
	return addr, routed
}
