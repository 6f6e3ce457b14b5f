//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestRelay runs a real query and a 4 MB COPY through the in-kernel relay
// and checks the bytes against a direct connection: the benchmark's
// reference relay must carry the protocol intact. It needs root (BPF), as
// `make test` does anyway (CI runs it as root).
func TestRelay(t *testing.T) {
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		t.Fatal("TEST_DATABASE_URL is not set: export TEST_DATABASE_URL=$(scripts/pg-up.sh)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the BPF sockmap relay needs root (CAP_BPF and CAP_NET_ADMIN): run make test as root, as CI does")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRedirector(64)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	backend := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c.(*net.TCPConn), backend)
		}
	}()
	const q = "COPY (SELECT g, md5(g::text) FROM generate_series(1, 150000) g) TO STDOUT"
	copyOut := func(c *pgx.Conn) []byte {
		var b bytes.Buffer
		if _, err := c.PgConn().CopyTo(t.Context(), &b, q); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	direct, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(t.Context())
	rc := cfg.Copy()
	rc.Host, rc.Port = "127.0.0.1", uint16(ln.Addr().(*net.TCPAddr).Port)
	relayed, err := pgx.ConnectConfig(t.Context(), rc)
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close(t.Context())
	var dpid, rpid int
	_ = direct.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&dpid)
	if err := relayed.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&rpid); err != nil || rpid == 0 || rpid == dpid {
		t.Fatalf("query through the relay: pid %d, %v", rpid, err)
	}
	want, got := copyOut(direct), copyOut(relayed)
	if len(want) < 4<<20 || !bytes.Equal(got, want) {
		t.Fatalf("COPY through the relay: %d bytes, direct %d bytes, equal %v", len(got), len(want), bytes.Equal(got, want))
	}
}
