package pgdirect_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/pgdirect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestIdleClose: bitd closes sessions idle for 2 s; the pool keeps working
// and WithTx never sees an error.
func TestIdleClose(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--pg-idle-timeout", "2s"))
	// TLS and plaintext (loopback only) sessions take different paths
	// through bitd's event loop: both must close idle sessions cleanly.
	for _, sslmode := range []string{"require", "disable"} {
		t.Run(sslmode, func(t *testing.T) {
			t.Parallel()
			testIdleClose(t, s, sslmode)
		})
	}
}

func testIdleClose(t *testing.T, s *bitdtest.Server, sslmode string) {
	c := newClient(t, s, s.APIKey, pgdirect.WithMaxConns(3), pgdirect.WithSSLMode(sslmode))
	db := createDB(t, s, s.APIKey)
	setupNotes(t, c, db)
	p, err := c.Pool(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		// Fill the pool with three connections, then leave them idle past
		// the server's timeout.
		done := make(chan error, 3)
		for range 3 {
			go func() {
				done <- c.WithTx(t.Context(), db, func(tx pgx.Tx) error {
					if _, err := tx.Exec(t.Context(), "INSERT INTO notes (body) VALUES ($1)", fmt.Sprint("r", round)); err != nil {
						return err
					}
					_, err := tx.Exec(t.Context(), "SELECT pg_sleep(0.2)")
					return err
				})
			}()
		}
		for range 3 {
			if err := <-done; err != nil {
				t.Fatalf("round %d: WithTx: %v", round, err)
			}
		}
		time.Sleep(3 * time.Second) // > the 2 s idle timeout
	}
	if n := countRows(t, c, db, "r2"); n != 3 {
		t.Fatalf("rows = %d, want 3", n)
	}
	if st := p.Stat(); st.NewConnsCount() <= 3 {
		t.Fatalf("pool opened %d connections: the server's idle closes were not exercised", st.NewConnsCount())
	}
}

// TestPostgresRestart runs bitd on a private PostgreSQL cluster, restarts
// that cluster, and checks that the same Client keeps working.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	// TLS to bitd and TCP to PostgreSQL; plaintext (bitd's event loop) and
	// PostgreSQL's Unix socket (--pg-backend).
	for _, tc := range []struct {
		name, sslmode string
		socket        bool
	}{{"tls-tcp", "require", false}, {"plaintext-socket", "disable", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testPostgresRestart(t, tc.sslmode, tc.socket)
		})
	}
}

func testPostgresRestart(t *testing.T, sslmode string, socket bool) {
	pg := startPrivateCluster(t)
	args := []string{"--database-url", pg.url}
	if socket {
		args = append(args, "--pg-backend", pg.dir)
	}
	s := bitdtest.Start(t, bitdtest.Args(args...))
	c := newClient(t, s, s.APIKey, pgdirect.WithMaxConns(4), pgdirect.WithSSLMode(sslmode))
	db := createDB(t, s, s.APIKey)
	setupNotes(t, c, db)
	if socket {
		var local bool
		err := c.WithConn(t.Context(), db, func(conn *pgxpool.Conn) error {
			return conn.QueryRow(t.Context(), "SELECT inet_client_addr() IS NULL").Scan(&local)
		})
		if err != nil || !local {
			t.Fatalf("bitd did not reach PostgreSQL over its Unix socket: %v %v", local, err)
		}
	}
	insert := func(body string) error {
		return c.WithTx(t.Context(), db, func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), "INSERT INTO notes (body) VALUES ($1)", body)
			return err
		})
	}
	if err := insert("before"); err != nil {
		t.Fatal(err)
	}
	pg.ctl(t, "restart", "-m", "fast")
	// The same Client must work again once PostgreSQL is back. Work that was
	// in flight may fail, and bitd itself may need a moment to replace its
	// own broken metadata connections, so it is tried until it works.
	if err := testwait.Wait(t.Context(), 10*time.Second, func() error { return insert("after") }); err != nil {
		t.Fatalf("WithTx after a PostgreSQL restart: %v\n%s", err, s.Logs())
	}
	if a, b := countRows(t, c, db, "before"), countRows(t, c, db, "after"); a != 1 || b != 1 {
		t.Fatalf("rows before=%d after=%d", a, b)
	}
}

type cluster struct {
	dir, url, user string
}

// startPrivateCluster initdb's and starts a throwaway PostgreSQL 15 cluster
// as a non-root user, on a free loopback port; it is stopped in cleanup.
func startPrivateCluster(t *testing.T) *cluster {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	dir, err := os.MkdirTemp("", "pgdirect-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cl := &cluster{dir: dir}
	if os.Geteuid() == 0 {
		cl.user = "postgres"
		if out, err := exec.Command("id", "-u", cl.user).CombinedOutput(); err != nil {
			t.Fatalf("need a non-root user %q to run PostgreSQL: %v %s", cl.user, err, out)
		}
		if out, err := exec.Command("chown", "-R", cl.user, dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pw := bitdtest.UniqueName("pw")
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(pw+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cl.user != "" {
		_ = exec.Command("chown", cl.user, pwfile).Run()
	}
	data := filepath.Join(dir, "data")
	cl.run(t, bin+"/initdb", "-D", data, "-U", "bitkit", "--pwfile="+pwfile, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\nmax_connections = 100\n", port, dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(conf)
	f.Close()
	cl.url = fmt.Sprintf("postgres://bitkit:%s@127.0.0.1:%d/postgres?sslmode=disable", pw, port)
	cl.ctl(t, "start")
	t.Cleanup(func() { cl.run(t, bin+"/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop") })
	return cl
}

func (cl *cluster) ctl(t *testing.T, args ...string) {
	t.Helper()
	data := filepath.Join(cl.dir, "data")
	cl.run(t, "/usr/lib/postgresql/15/bin/pg_ctl", append([]string{"-D", data, "-l", filepath.Join(cl.dir, "log"), "-w", "-t", "60"}, args...)...)
}

func (cl *cluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if cl.user != "" {
		cmd = exec.Command("runuser", append([]string{"-u", cl.user, "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = cl.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}
