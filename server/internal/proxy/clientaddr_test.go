package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// clientAuth is a testAuth that records the client address it was given
// and can refuse every attempt as login limited.
type clientAuth struct {
	*testAuth
	limited bool
	mu      sync.Mutex
	seen    []string // ClientFrom of every AuthorizeWire call
}

func (a *clientAuth) AuthorizeWire(ctx context.Context, password, database string) (*WireTarget, error) {
	a.mu.Lock()
	seen := "<nil>"
	if c := ClientFrom(ctx); c != nil {
		seen = c.String()
	}
	a.seen = append(a.seen, seen)
	a.mu.Unlock()
	if a.limited {
		return nil, fmt.Errorf("%w (%s): try again in 42 seconds", ErrLoginLimited, seen)
	}
	return a.testAuth.AuthorizeWire(ctx, password, database)
}

func (a *clientAuth) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// TestClientAddr checks Config.ClientAddr: its address reaches the
// Authorizer (ClientFrom) and decides the plaintext-from-loopback rule,
// and its error ends the connection with FATAL 08P01; and that
// ErrLoginLimited becomes FATAL 28000, asked once (no retries).
func TestClientAddr(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4711}
	fatalWith := func(t *testing.T, err error, code, msg string) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, msg) || pe.Severity != "FATAL" {
			t.Fatalf("err = %v, want FATAL %s containing %q", err, code, msg)
		}
	}

	t.Run("named client", func(t *testing.T) {
		t.Parallel()
		auth := &clientAuth{testAuth: newTestAuth(f)}
		key, _ := auth.key("w")
		_, addr := startProxy(t, Config{DevTLS: true, AllowPlaintext: true,
			ClientAddr: func(net.Conn) (net.Addr, error) { return remote, nil }}, auth)
		conn, err := connect(t, addr, key, testDB, "require")
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		var one int
		if err := conn.QueryRow(t.Context(), "select 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("select 1: %d, %v", one, err)
		}
		if got := auth.calls(); len(got) != 1 || got[0] != remote.String() {
			t.Errorf("the Authorizer saw clients %q, want [%s]", got, remote)
		}
		// Plaintext is for loopback clients: the named client is not one,
		// though the TCP peer is.
		_, err = connect(t, addr, key, testDB, "disable")
		fatalWith(t, err, "28000", "SSL required")
	})

	t.Run("hook error", func(t *testing.T) {
		t.Parallel()
		auth := &clientAuth{testAuth: newTestAuth(f)}
		key, _ := auth.key("w")
		_, addr := startProxy(t, Config{DevTLS: true,
			ClientAddr: func(net.Conn) (net.Addr, error) { return nil, errors.New("no PROXY header from 127.0.0.1") }}, auth)
		// Without TLS: pgx reads an ErrorResponse to its SSLRequest as "server
		// refused TLS" and drops the message.
		_, err := connect(t, addr, key, testDB, "disable")
		fatalWith(t, err, "08P01", "no PROXY header from 127.0.0.1")
		if got := auth.calls(); len(got) != 0 {
			t.Errorf("the Authorizer was asked %d times after the hook failed", len(got))
		}
	})

	t.Run("login limited", func(t *testing.T) {
		t.Parallel()
		auth := &clientAuth{testAuth: newTestAuth(f), limited: true}
		key, _ := auth.key("w")
		_, addr := startProxy(t, Config{DevTLS: true}, auth)
		_, err := connect(t, addr, key, testDB, "require")
		fatalWith(t, err, "28000", "too many failed logins from this address (127.0.0.1:")
		if got := auth.calls(); len(got) != 1 || !strings.HasPrefix(got[0], "127.0.0.1:") {
			t.Errorf("the Authorizer saw %q, want one call from the TCP peer", got)
		}
	})
}
