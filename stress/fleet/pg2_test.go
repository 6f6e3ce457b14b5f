//go:build fleet

package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// secondName is the name the fleet registers its second cluster under.
const secondName = "second"

// pg2Ports is where the fleet looks for a free port for its second
// cluster (the shared cluster of scripts/pg-up.sh is on 55432).
const pg2FirstPort, pg2LastPort = 55560, 55569

// pgCluster is the fleet's second PostgreSQL cluster: started by
// scripts/pg-up.sh (the same script, lock-down and settings as the shared
// cluster, with BITKIT_PG_DIR and BITKIT_PG_PORT of its own), stopped by
// the postmaster's process id.
type pgCluster struct {
	Dir  string // BITKIT_PG_DIR: data/, sock/, log/server.log
	Port int
	// Admin is the superuser URL with its password (the shared
	// cluster's: bitd logs in to every cluster with its own admin
	// password when the registered URL carries none). Never logged.
	Admin string
	// Registered is the URL given to `bitd admin cluster add`: no password.
	Registered string
}

// pg2Env is the environment of pg-up.sh (and so of the postmaster it
// starts): the test's, without credentials and bitd's settings.
func pg2Env(dir string, port int) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "TEST_DATABASE_URL" || strings.HasPrefix(k, "BITD_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "PG") || k == "BITKIT_PG_DIR" || k == "BITKIT_PG_PORT" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "BITKIT_PG_DIR="+dir, "BITKIT_PG_PORT="+strconv.Itoa(port))
}

// freePG2Port is the first port of pg2FirstPort..pg2LastPort that nothing
// listens on.
func freePG2Port(t *testing.T) int {
	t.Helper()
	for p := pg2FirstPort; p <= pg2LastPort; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no free port in 127.0.0.1:%d-%d for the fleet's second PostgreSQL cluster: another fleet is running, or stop what listens there", pg2FirstPort, pg2LastPort)
	return 0
}

// startSecondCluster starts the second cluster under
// $BITKIT_FLEET_PG2_DIR (make fleet makes one and removes what is left of
// it afterwards) or a new /tmp/fleet-pg2-* directory, gives its superuser
// the shared cluster's password, and stops it (by process id) and removes
// its directory in t.Cleanup, after keeping its log in
// test-artifacts/fleet-logs/pg2.log. Register it before the replicas start,
// so that it stops after them (the primary's --ephemeral clean-up drops
// its databases on every cluster).
func startSecondCluster(t *testing.T) *pgCluster {
	t.Helper()
	dir := os.Getenv("BITKIT_FLEET_PG2_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("/tmp", "fleet-pg2-"); err != nil {
			t.Fatal(err)
		}
	}
	c := &pgCluster{Dir: dir, Port: freePG2Port(t)}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("stop the second cluster: %v", err)
		}
		logs := filepath.Join(bitdtest.RepoRoot(), "test-artifacts", "fleet-logs")
		if b, err := os.ReadFile(filepath.Join(c.Dir, "log", "server.log")); err == nil && os.MkdirAll(logs, 0o755) == nil {
			_ = os.WriteFile(filepath.Join(logs, "pg2.log"), b, 0o644)
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			t.Errorf("remove the second cluster's directory: %v", err)
		}
	})
	tmpURL := c.up(t)

	main, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := main.User.Password()
	conn, err := pgx.Connect(t.Context(), tmpURL)
	if err != nil {
		t.Fatalf("connect to the second cluster as its superuser: %v", err)
	}
	_, err = conn.Exec(t.Context(), "ALTER ROLE bitkit PASSWORD '"+strings.ReplaceAll(pw, "'", "''")+"'")
	conn.Close(context.Background())
	if err != nil {
		t.Fatalf("give the second cluster's superuser the shared cluster's password: %v", err)
	}
	// pg-up.sh prints its URL from this file when it starts the cluster
	// again: keep it true.
	if err := os.WriteFile(filepath.Join(c.Dir, "password"), []byte(pw), 0o600); err != nil {
		t.Fatal(err)
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port))
	c.Admin = (&url.URL{Scheme: "postgres", User: url.UserPassword("bitkit", pw), Host: host, Path: "/postgres", RawQuery: "sslmode=disable"}).String()
	c.Registered = (&url.URL{Scheme: "postgres", User: url.User("bitkit"), Host: host, Path: "/postgres", RawQuery: "sslmode=disable"}).String()
	return c
}

// up runs scripts/pg-up.sh for the cluster (initdb the first time, start,
// lock-down) and returns the URL it prints. The URL holds a password: it
// is never logged, and neither is the script's output on failure beyond
// its standard error.
func (c *pgCluster) up(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bitdtest.RepoRoot(), "scripts", "pg-up.sh"))
	cmd.Env = pg2Env(c.Dir, c.Port)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("BITKIT_PG_DIR=%s BITKIT_PG_PORT=%d scripts/pg-up.sh: %v\n%s", c.Dir, c.Port, err, stderr.String())
	}
	u := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(u, "postgres://") {
		t.Fatalf("scripts/pg-up.sh for the second cluster printed no URL; its log:\n%s", stderr.String())
	}
	return u
}

// pid is the postmaster's process id, or 0 when the cluster is not
// running.
func (c *pgCluster) pid() int {
	b, err := os.ReadFile(filepath.Join(c.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// stop shuts the cluster down by its postmaster's process id: SIGINT
// (PostgreSQL's fast shutdown: sessions end, nothing committed is lost),
// then SIGQUIT after 30 s. A stopped cluster is left alone.
func (c *pgCluster) stop() error {
	pid := c.pid()
	if pid == 0 {
		return nil
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT} {
		if err := syscall.Kill(pid, sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("signal postmaster %d: %w", pid, err)
		}
		// Gone, or a zombie whose postmaster.pid is removed (the last
		// thing a shutdown does).
		if testwait.Wait(context.Background(), 30*time.Second, func() error {
			if syscall.Kill(pid, 0) != nil || c.pid() == 0 {
				return nil
			}
			return errors.New("the postmaster still runs")
		}) == nil {
			return nil
		}
	}
	return fmt.Errorf("postmaster %d (data %s) still runs after SIGINT and SIGQUIT", pid, filepath.Join(c.Dir, "data"))
}

// clusterAdmins connects as the superuser to both PostgreSQL clusters (the
// default one first): a test's database lands on either, so what it looks
// for in pg_stat_activity is looked for in both. The connections close at
// the end of the test.
func (f *fleet) clusterAdmins(t *testing.T) []*pgx.Conn {
	t.Helper()
	var conns []*pgx.Conn
	for _, u := range []string{bitdtest.DatabaseURL(t), f.PG2.Admin} {
		c, err := pgx.Connect(t.Context(), u)
		if err != nil {
			t.Fatalf("connect to a cluster as its superuser: %v", err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		conns = append(conns, c)
	}
	return conns
}

// activeCount counts the active statements equal to query (when exact) or
// containing it, over both clusters.
func activeCount(t *testing.T, admins []*pgx.Conn, query string, exact bool) int {
	total := 0
	for _, a := range admins {
		var n int
		err := a.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND state = 'active' AND (CASE WHEN $2 THEN query = $1 ELSE position($1 in query) > 0 END)`, query, exact).Scan(&n)
		if err == nil {
			total += n
		}
	}
	return total
}
