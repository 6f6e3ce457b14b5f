package main

import (
	"context"
	"fmt"
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
	"github.com/jackc/pgx/v5"
)

// TestDevOwnCluster runs `bitd dev` without --database-url: it starts a
// private PostgreSQL cluster, reuses it on the next start, and stops it on
// SIGTERM.
func TestDevOwnCluster(t *testing.T) {
	t.Parallel()
	bin := bitdtest.Bitd(t)
	data := t.TempDir()
	postmasterPid := func() int {
		b, err := os.ReadFile(filepath.Join(data, "pg", "data", "postmaster.pid"))
		if err != nil {
			return 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		pid, _ := strconv.Atoi(strings.TrimSpace(line))
		return pid
	}
	var keys []string
	for round := range 2 {
		envFile := filepath.Join(data, "demo.env")
		_ = os.Remove(envFile)
		logf, err := os.Create(filepath.Join(t.TempDir(), "bitd.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "dev", "--http", "127.0.0.1:0", "--pg", "127.0.0.1:0", "--data", data, "--user", "owncluster")
		cmd.Env = append(os.Environ(), "BITD_DATABASE_URL=")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		logs := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
		var env map[string]string
		deadline := time.Now().Add(90 * time.Second)
		for env == nil {
			if b, err := os.ReadFile(envFile); err == nil {
				env = map[string]string{}
				for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					k, v, _ := strings.Cut(l, "=")
					env[k] = v
				}
				break
			}
			select {
			case err := <-done:
				t.Fatalf("round %d: bitd exited early (%v):\n%s", round, err, logs())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("round %d: not ready:\n%s", round, logs())
			}
		}
		if env["BITKIT_DEMO_USER"] != "owncluster" || !strings.HasPrefix(env["BITKIT_API_KEY"], "v2_") {
			t.Fatalf("demo.env = %v", env)
		}
		if st, err := os.Stat(envFile); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("demo.env mode: %v %v", st.Mode().Perm(), err)
		}
		keys = append(keys, env["BITKIT_API_KEY"])
		r := call(t, "POST", env["BITKIT_ENDPOINT"]+"/v2beta/db/", env["BITKIT_API_KEY"], map[string]any{"name": "round" + strconv.Itoa(round)})
		want(t, r, 201, "")
		r = call(t, "GET", env["BITKIT_ENDPOINT"]+"/v2beta/db/", env["BITKIT_API_KEY"], nil)
		if l, _ := r.Body["databases"].([]any); len(l) != round+1 {
			t.Fatalf("round %d: %d databases, want %d (cluster not reused?)", round, len(l), round+1)
		}
		// The wire proxy reaches bitd's own cluster over its Unix socket.
		pc, err := pgx.Connect(t.Context(), fmt.Sprintf("postgres://x:%s@%s/%s?sslmode=disable",
			env["BITKIT_API_KEY"], env["BITKIT_PG_ADDR"], url.PathEscape("owncluster/round"+strconv.Itoa(round))))
		if err != nil {
			t.Fatalf("round %d: connect through the proxy: %v", round, err)
		}
		var viaSocket bool
		err = pc.QueryRow(t.Context(), "SELECT inet_client_addr() IS NULL").Scan(&viaSocket)
		pc.Close(context.Background())
		if err != nil || !viaSocket {
			t.Fatalf("round %d: proxy backend over the Unix socket: %v, %v", round, viaSocket, err)
		}
		// Its own cluster is locked down: tenant roles only on the socket.
		if l := logs(); !strings.Contains(l, "PostgreSQL refuses tenant roles at 127.0.0.1:") || strings.Contains(l, "SECURITY:") {
			t.Fatalf("round %d: bitd dev's own cluster is not reported locked down:\n%s", round, l)
		}
		if st, err := os.Stat(filepath.Join(data, "pg", "sock")); err != nil {
			t.Fatal(err)
		} else if st.Mode().Perm() != 0o700 {
			t.Fatalf("round %d: socket directory mode %v, want 0700", round, st.Mode().Perm())
		}
		pid := postmasterPid()
		if pid == 0 || syscall.Kill(pid, 0) != nil {
			t.Fatalf("round %d: no running postmaster (pid %d)", round, pid)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("bitd exit after SIGTERM: %v\n%s", err, logs())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("bitd did not stop after SIGTERM")
		}
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("postmaster %d still runs after bitd stopped", pid)
		}
		logf.Close()
	}
	if keys[0] == keys[1] {
		t.Fatal("the API key was not renewed on restart")
	}
}

// TestEphemeralCleanup checks that --ephemeral drops the platform databases,
// their roles and the metadata database.
func TestEphemeralCleanup(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	for _, n := range []string{"eph1", "eph2"} {
		want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", s.APIKey, map[string]any{"name": n}), 201, "")
	}
	want(t, call(t, "DELETE", s.Endpoint+"/v2beta/db/"+s.User+"/eph2", s.APIKey, nil), 200, "")
	meta := metadataDB(t, s)
	ctx := context.Background()
	mcfg, err := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	mcfg.Database = meta
	mc, err := pgx.ConnectConfig(ctx, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := mc.Query(ctx, "SELECT pg_name FROM databases")
	pgNames, err := pgx.CollectRows(rows, pgx.RowTo[string])
	mc.Close(ctx)
	if err != nil || len(pgNames) != 2 {
		t.Fatalf("pg names %v, %v", pgNames, err)
	}
	c := wireConn(t, s, s.APIKey, s.User+"/eph1") // an open session must not block the drop
	_ = c
	s.Stop(t)

	admin, err := pgx.Connect(ctx, bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var dbs, roles int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1) OR datname = $2", append(pgNames, ""), meta).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, n := range pgNames {
		patterns = append(patterns, n+"\\_%")
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE ANY($1)", patterns).Scan(&roles); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || roles != 0 {
		t.Fatalf("after --ephemeral: %d databases and %d roles left (of %v, %s)", dbs, roles, pgNames, meta)
	}
}
