package pgpool_test

import (
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
)

// TestTenantAddr: pools reach tenant roles at Config.TenantAddr; without
// one, on the test cluster's Unix socket (its loopback admin URL is the
// ConnString), where a locked-down pg_hba.conf takes them; an invalid
// TenantAddr is reported by Pool.
func TestTenantAddr(t *testing.T) {
	adminURL, db, role, sec := fixture(t)
	ctx := t.Context()

	auto := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec})
	defer auto.Close()
	p, err := auto.Pool(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}
	var unix bool
	if err := p.QueryRow(ctx, "SELECT inet_server_addr() IS NULL").Scan(&unix); err != nil || !unix {
		t.Fatalf("the pool's session is not on the Unix socket (unix=%v, %v)", unix, err)
	}
	if !strings.HasPrefix(p.Config().ConnConfig.Host, "/") {
		t.Errorf("pool host %q, want a socket directory", p.Config().ConnConfig.Host)
	}

	tcp := pgpool.New(pgpool.Config{ConnString: adminURL, TenantAddr: "127.0.0.1:1", Secret: sec})
	defer tcp.Close()
	p, err = tcp.Pool(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}
	if h, port := p.Config().ConnConfig.Host, p.Config().ConnConfig.Port; h != "127.0.0.1" || port != 1 {
		t.Errorf("pool address %s:%d, want TenantAddr 127.0.0.1:1", h, port)
	}
	if err := p.Ping(ctx); err == nil {
		t.Error("a pool pointed at a closed port connected")
	}

	bad := pgpool.New(pgpool.Config{ConnString: adminURL, TenantAddr: "/nonexistent-socket-dir", Secret: sec})
	defer bad.Close()
	if _, err := bad.Pool(ctx, db, role); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("invalid TenantAddr: %v", err)
	}
}
