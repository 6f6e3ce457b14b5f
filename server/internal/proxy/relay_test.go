package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRelayBulk pushes more data than the socket buffers hold through every
// relay, in both directions, with a client that does not read for a while,
// and checks that every byte arrives in order.
func TestRelayBulk(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		srv, addr := startProxy(t, mode.config(Config{}), auth)

		// Backend → client: a 32 MB result, read only after a pause.
		rs := rawConnectMode(t, mode, addr, key, testDB)
		const rows, width = 32000, 1000
		rs.fe.Send(&pgproto3.Query{String: fmt.Sprintf("SELECT g, repeat(chr(65 + g %% 26), %d) FROM generate_series(1, %d) g", width, rows)})
		if err := rs.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // let every buffer on the way fill up
		next := 1
		for done := false; !done; {
			msg, err := rs.fe.Receive()
			if err != nil {
				t.Fatalf("after row %d: %v", next-1, err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				g, _ := strconv.Atoi(string(m.Values[0]))
				want := strings.Repeat(string(rune(65+g%26)), width)
				if g != next || string(m.Values[1]) != want {
					t.Fatalf("row %d: got g=%d and %d bytes", next, g, len(m.Values[1]))
				}
				next++
			case *pgproto3.ErrorResponse:
				t.Fatalf("query: %s %s", m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				done = true
			}
		}
		if next-1 != rows {
			t.Fatalf("got %d rows, want %d", next-1, rows)
		}

		// Client → backend: COPY 32 MB in, then pipelined queries.
		conn, err := connect(t, addr, key, testDB, mode.sslmode())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), "CREATE TEMP TABLE bulk (n int, s text)"); err != nil {
			t.Fatal(err)
		}
		var in bytes.Buffer
		for i := 1; i <= rows; i++ {
			fmt.Fprintf(&in, "%d\t%s\n", i, strings.Repeat("b", width))
		}
		tag, err := conn.PgConn().CopyFrom(t.Context(), &in, "COPY bulk FROM STDIN")
		if err != nil || tag.RowsAffected() != rows {
			t.Fatalf("COPY: %v, %d rows", err, tag.RowsAffected())
		}
		var n, sum, bytes int64
		if err := conn.QueryRow(t.Context(), "SELECT count(*), sum(n), sum(length(s)) FROM bulk").Scan(&n, &sum, &bytes); err != nil {
			t.Fatal(err)
		}
		if n != rows || sum != rows*(rows+1)/2 || bytes != rows*width {
			t.Fatalf("after COPY: count %d, sum %d, bytes %d", n, sum, bytes)
		}
		batch := &pgx.Batch{}
		for i := range 2000 {
			batch.Queue("SELECT $1::int + 1", i)
		}
		br := conn.SendBatch(t.Context(), batch)
		for i := range 2000 {
			var got int
			if err := br.QueryRow().Scan(&got); err != nil || got != i+1 {
				t.Fatalf("pipelined query %d: %d, %v", i, got, err)
			}
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		// A client that hangs up in the middle of a large result: the
		// session and its backend end.
		quitter := rawConnectMode(t, mode, addr, key, testDB)
		open := srv.Sessions()
		marker := "/* quitter_" + pgtest.RandHex(4) + " */"
		quitter.fe.Send(&pgproto3.Query{String: fmt.Sprintf("SELECT g, repeat('q', %d) %s FROM generate_series(1, %d) g", width, marker, rows)})
		if err := quitter.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := quitter.fe.Receive(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		quitter.conn.Close()
		waitSessions(t, srv, func(n int) bool { return n < open }, "the session of a client that hung up is still open")
		waitBackendGone(t, f, marker, 20*time.Second, "the backend of a session whose client hung up is still there", nil)

		var stalls int64
		for _, ss := range srv.snapshot(nil) {
			stalls += ss.stalls.Load()
		}
		if !mode.goroutine && runtime.GOOS == "linux" && stalls == 0 {
			t.Errorf("the event loop never held bytes back: the test did not reach the full-buffer path")
		}
	})
}

// unixBackend returns the BackendAddr of the test cluster's Unix socket.
func unixBackend(t *testing.T, f *fixture) string {
	t.Helper()
	admin, err := pgx.Connect(t.Context(), f.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var dirs, port string
	if err := admin.QueryRow(t.Context(), "SELECT current_setting('unix_socket_directories'), current_setting('port')").Scan(&dirs, &port); err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimSpace(strings.Split(dirs, ",")[0])
	if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL."+port)); err != nil {
		t.Fatalf("the test cluster (scripts/pg-up.sh) must listen on a Unix socket: %v", err)
	}
	return dir + ":" + port
}

// TestUnixSocketBackend relays to PostgreSQL over its Unix socket (bitd
// --pg-backend DIR): queries, cancel and termination work as over TCP.
func TestUnixSocketBackend(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	auth.backend = unixBackend(t, f)
	key, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		_, addr := startProxy(t, mode.config(Config{RevalidateEvery: -1}), auth)
		conn, err := connect(t, addr, key, testDB, mode.sslmode())
		if err != nil {
			t.Fatal(err)
		}
		var viaSocket bool
		if err := conn.QueryRow(t.Context(), "SELECT inet_client_addr() IS NULL").Scan(&viaSocket); err != nil || !viaSocket {
			t.Fatalf("backend connection over the Unix socket: %v, %v", viaSocket, err)
		}
		checkCancel(t, f, conn)
	})
	// Ending the sessions of the credential closes them all.
	key2, cred2 := auth.key("w")
	srv, addr := startProxy(t, plaintextRelay.config(Config{RevalidateEvery: -1}), auth)
	rs := rawConnectMode(t, plaintextRelay, addr, key2, testDB)
	srv.TerminateCredential(cred2)
	if m := rs.waitFatal(t); m.Code != "57P01" {
		t.Fatalf("got %s %s", m.Code, m.Message)
	}
}

// TestRelayClientResetWhilePaused: a client streams COPY data to a backend
// that does not read (the table is locked), so the relay stops reading the
// client; then the client is killed (RST). The session must end at once,
// not when the backend drains (the event loop used to spin on the reset
// socket meanwhile).
func TestRelayClientResetWhilePaused(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	// A Unix socket's buffers do not grow (TCP autotuning would let the
	// blocked backend's socket take more data now and then, which resumes
	// the relay).
	auth.backend = unixBackend(t, f)
	key, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		admin, err := pgx.Connect(t.Context(), f.db.URL(f.owner)) // the database's owner
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(context.Background())
		table := "paused_" + pgtest.RandHex(4)
		if _, err := admin.Exec(t.Context(), "CREATE TABLE "+table+" (s text)"); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = admin.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) }()
		srv, addr := startProxy(t, mode.config(Config{}), auth)
		tx, err := admin.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(t.Context(), "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		rs := rawConnectMode(t, mode, addr, key, testDB)
		// Send the COPY and its data without waiting for
		// CopyInResponse: the backend waits for the lock and reads
		// nothing, so every buffer on the way fills up.
		rs.fe.Send(&pgproto3.Query{String: "COPY " + table + " FROM STDIN"})
		chunk := &pgproto3.CopyData{Data: bytes.Repeat([]byte("x\n"), 32<<10)}
		wrote := make(chan error, 1)
		go func() {
			for {
				rs.fe.Send(chunk)
				if err := rs.fe.Flush(); err != nil {
					wrote <- err
					return
				}
			}
		}()
		// Wait until the client's writes block (the proxy stopped
		// reading), i.e. no progress for a while.
		time.Sleep(time.Second)
		tcp := rs.conn
		if tc, ok := tcp.(interface{ NetConn() net.Conn }); ok {
			tcp = tc.NetConn()
		}
		_ = tcp.(*net.TCPConn).SetLinger(0) // close sends RST
		// Tenant roles cannot read pg_stat_activity (it shows other
		// tenants' sessions): watch as the cluster's superuser.
		su, err := pgx.Connect(t.Context(), f.adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer su.Close(context.Background())
		var waiting int
		if err := su.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY "+table+"%'").Scan(&waiting); err != nil || waiting != 1 {
			t.Fatalf("the COPY is not waiting for the lock: %d, %v", waiting, err)
		}
		tcp.Close()
		<-wrote
		waitSessions(t, srv, func(n int) bool { return n == 0 }, "the session of a reset client is still open while its backend waits for a lock")
	})
}

// TestTLSGarbage: a TLS client that sends bytes which are no TLS record
// (or a record that fails to decrypt) mid-session ends its session and its
// backend at once; other sessions on the same relay are untouched.
func TestTLSGarbage(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	for _, mode := range relayModes {
		if mode.plaintext {
			continue
		}
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv, addr := startProxy(t, mode.config(Config{}), auth)
			other := rawConnectMode(t, mode, addr, key, testDB)
			for _, garbage := range [][]byte{
				[]byte("GET / HTTP/1.1\r\n\r\n"),                                   // not a record
				append([]byte{23, 3, 3, 0, 32}, bytes.Repeat([]byte{0x5a}, 32)...), // application data that fails to decrypt
			} {
				rs := rawConnectMode(t, mode, addr, key, testDB)
				if err := rs.query(t, "SELECT 1"); err != nil {
					t.Fatal(err)
				}
				marker := "garbage_" + pgtest.RandHex(4)
				if err := rs.query(t, "SELECT 1 /* "+marker+" */"); err != nil {
					t.Fatal(err)
				}
				open := srv.Sessions()
				if _, err := rs.conn.(*tls.Conn).NetConn().Write(garbage); err != nil {
					t.Fatal(err)
				}
				waitSessions(t, srv, func(n int) bool { return n < open }, fmt.Sprintf("%q: the session is still open", garbage[:5]))
				waitBackendGone(t, f, marker, 10*time.Second, "the backend of a session that sent garbage is still there", nil)
			}
			if err := other.query(t, "SELECT 2"); err != nil {
				t.Fatalf("another session after the garbage: %v", err)
			}
		})
	}
}
