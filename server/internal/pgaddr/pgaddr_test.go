package pgaddr

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestOpenToOthers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, ".s.PGSQL.5432")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a := Addr{Host: dir, Port: 5432}
	for _, c := range []struct {
		dir, sock os.FileMode
		open      bool
	}{{0o700, 0o777, false}, {0o755, 0o700, false}, {0o755, 0o777, true}, {0o711, 0o666, true}} {
		if err := os.Chmod(dir, c.dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sock, c.sock); err != nil {
			t.Fatal(err)
		}
		if got := a.OpenToOthers(); got != c.open {
			t.Errorf("directory %v, socket %v: OpenToOthers = %v, want %v", c.dir, c.sock, got, c.open)
		}
	}
	if (Addr{Host: "127.0.0.1", Port: 5432}).OpenToOthers() {
		t.Error("a TCP address is never a socket open to others")
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		in, want, err string
	}{
		{"127.0.0.1:5432", "127.0.0.1:5432", ""},
		{"[::1]:6543", "[::1]:6543", ""},
		{"db.internal:5432", "db.internal:5432", ""},
		{dir, dir + ":5433", ""},
		{dir + ":7000", dir + ":7000", ""},
		{dir + ":x", "", "not a number"},
		{"/nonexistent-dir", "", "not a directory"},
		{"db.internal", "", "want host:port"},
		{"db.internal:0", "", "want host:port"},
		{":5432", "", "want host:port"},
	} {
		a, err := Parse(c.in, 5433)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v, %v; want an error with %q", c.in, a, err, c.err)
			}
			continue
		}
		if err != nil || a.String() != c.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", c.in, a.String(), err, c.want)
		}
		if a.Unix() != strings.HasPrefix(c.in, "/") {
			t.Errorf("Parse(%q).Unix() = %v", c.in, a.Unix())
		}
	}
}

// TestTenantFindsSocket: with a loopback admin URL, bitd reaches tenant
// roles on the cluster's Unix socket (the one scripts/pg-up.sh configures),
// and an override wins.
func TestTenantFindsSocket(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	testURL := os.Getenv("TEST_DATABASE_URL")
	if testURL == "" {
		t.Fatal("TEST_DATABASE_URL is not set: export TEST_DATABASE_URL=$(scripts/pg-up.sh)")
	}
	admin, err := pgx.Connect(ctx, testURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var dirs, port string
	if err := admin.QueryRow(ctx, "SELECT current_setting('unix_socket_directories'), current_setting('port')").Scan(&dirs, &port); err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(strings.Split(dirs, ",")[0])
	a, err := Tenant(ctx, testURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Unix() || a.Host != want || a.String() != want+":"+port {
		t.Fatalf("tenant address %q (%s); want the socket %s:%s", a.String(), a.Why, want, port)
	}
	if _, err := os.Stat(filepath.Join(a.Host, ".s.PGSQL."+port)); err != nil {
		t.Fatal(err)
	}
	if a.OpenToOthers() {
		t.Errorf("the test cluster's socket %s is open to every OS user (scripts/pg-up.sh makes its directory 0700)", a)
	}
	// An admin that may not read unix_socket_directories finds the
	// socket only in DefaultSocketDirs (not the test cluster's): TCP, with
	// NoSocket set; pg_read_all_settings lets it find the socket.
	role := "pgaddr_ns_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD 'pgaddr-test-pw'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE "+role) })
	nsCfg, err := pgx.ParseConfig(testURL)
	if err != nil {
		t.Fatal(err)
	}
	nsURL := fmt.Sprintf("postgres://%s:pgaddr-test-pw@%s/postgres?sslmode=disable", role, net.JoinHostPort(nsCfg.Host, port))
	if ns, err := Tenant(ctx, nsURL, ""); err != nil || ns.Unix() || !ns.NoSocket || !strings.Contains(ns.Why, "/tmp/.s.PGSQL."+port+": no socket there") {
		t.Fatalf("non-superuser admin: %+v, %v; want the TCP address with NoSocket", ns, err)
	}
	if _, err := admin.Exec(ctx, "GRANT pg_read_all_settings TO "+role); err != nil {
		t.Fatal(err)
	}
	if ns, err := Tenant(ctx, nsURL, ""); err != nil || ns.String() != a.String() || ns.NoSocket {
		t.Fatalf("non-superuser admin with pg_read_all_settings: %+v, %v; want %s", ns, err, a)
	}
	if a.NoSocket {
		t.Errorf("NoSocket set with a socket found: %+v", a)
	}

	o, err := Tenant(ctx, testURL, "127.0.0.1:1")
	if err != nil || o.String() != "127.0.0.1:1" || o.Why != "--pg-backend" {
		t.Fatalf("override: %+v, %v", o, err)
	}
	if _, err := Tenant(ctx, testURL, "/nonexistent-dir"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a missing socket directory: %v", err)
	}
	r, err := Tenant(ctx, "postgres://u:hunter2@db.example.com:6543/x", "")
	if err != nil || r.String() != "db.example.com:6543" {
		t.Fatalf("remote cluster: %+v, %v", r, err)
	}
	if _, err := Tenant(ctx, "postgres://u:hunter2@[::1", ""); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("malformed URL: %v", err)
	}
}
