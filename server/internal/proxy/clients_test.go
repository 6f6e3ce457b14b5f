package proxy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const pgbenchBin = "/usr/lib/postgresql/15/bin/pgbench"

// runClient runs psql or pgbench with key as PGPASSWORD and PGSSLMODE=require
// (a connection string's sslmode wins).
func runClient(t *testing.T, key string, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+key, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=require")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func connString(addr, sslmode string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s dbname=%s user=whoever sslmode=%s", host, port, testDB, sslmode)
}

func TestPsql(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	_, addr := startProxy(t, Config{DevTLS: true}, auth)
	for _, tc := range []struct {
		name, sslmode, key string
		wantOut            string
		wantErr            bool
	}{
		{"sslmode=require", "require", key, f.owner + "\nYou are connected to database \"acct/notes\"", false},
		{"sslmode=require uses TLS", "require", key, "SSL connection (protocol: TLS", false},
		{"sslmode=disable refused", "disable", key, "SSL required: connect with sslmode=require", true},
		{"wrong key", "require", "v2_nope", "password authentication failed: the API key or token is invalid or revoked", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := runClient(t, tc.key, "/usr/bin/psql", connString(addr, tc.sslmode), "-X", "-At",
				"-c", "SELECT current_user", "-c", `\conninfo`)
			if (err != nil) != tc.wantErr || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("psql: err=%v out=%q; want error=%v and output containing %q", err, out, tc.wantErr, tc.wantOut)
			}
		})
	}
}

func TestPgbench(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	_, addr := startProxy(t, Config{DevTLS: true}, auth)
	host, port, _ := net.SplitHostPort(addr)
	common := []string{"-h", host, "-p", port, "-U", "whoever"}
	if out, err := runClient(t, key, pgbenchBin, append(common, "-i", "-q", "-s", "1", testDB)...); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"select-only", "200/200", []string{"-S", "-c", "4", "-j", "2", "-t", "50"}},
		{"tpcb", "50/50", []string{"-c", "2", "-j", "1", "-t", "25"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runClient(t, key, pgbenchBin, append(append(common, tc.args...), testDB)...)
			if err != nil {
				t.Fatalf("pgbench: %v\n%s", err, out)
			}
			if !strings.Contains(out, "number of transactions actually processed: "+tc.want) ||
				!strings.Contains(out, "number of failed transactions: 0 (0.000%)") {
				t.Fatalf("pgbench output:\n%s", out)
			}
		})
	}
}
