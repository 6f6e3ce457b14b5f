package stress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestAttackClusterDirectLogin (no way in but through bitd, and what
// neighbours can see in pg_stat_activity): a reader of another user's public
// database sets its backend role's password through the wire proxy, as
// PostgreSQL lets every role do, then tries to log in to the cluster
// directly with it: on every TCP address the cluster listens on (to its own
// database, postgres, template1 and bitd's metadata database), and on the
// Unix socket as an OS user that is not bitd's. Every attempt is refused;
// on the socket even bitd's OS user reaches only the role's own database;
// the other readers of the database keep working over HTTP and the wire.
func TestAttackClusterDirectLogin(t *testing.T) {
	s := startScanned(t)
	needWire(t, s)
	tried(t, "tenant sets its role's password, logs in to the cluster directly")
	alice := newClient(s.Endpoint, s.APIKey)
	db := alice.createDB(t, "shared"+randSuffix(), false)
	alice.mustQuery(t, db, "create table t (v text); insert into t values ('before')")
	malloryKey := s.NewUser(t, "mallory"+randSuffix(), "")
	bobKey := s.NewUser(t, "bob"+randSuffix(), "")
	remember(malloryKey, bobKey)
	bob := newClient(s.Endpoint, bobKey)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	m, err := proxyConnect(ctx, s.PGAddr, db, malloryKey)
	if err != nil {
		t.Fatalf("mallory cannot open the public database through the proxy: %v", err)
	}
	defer m.Close(context.Background())
	var role, port string
	if err := m.QueryRow(ctx, "select current_user::text, current_setting('port')").Scan(&role, &port); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(role, "_public") {
		t.Fatalf("mallory's backend role is %q, want the database's public readers' role", role)
	}
	pgName := strings.TrimSuffix(role, "_public")
	const known = "mallory-knows-this-password"
	remember(known)
	if _, err := m.Exec(ctx, "ALTER ROLE CURRENT_USER PASSWORD '"+known+"'"); err != nil {
		record(t, "tenant runs ALTER ROLE CURRENT_USER PASSWORD over the wire", "refused: "+err.Error())
	} else {
		record(t, "tenant runs ALTER ROLE CURRENT_USER PASSWORD over the wire", "allowed by PostgreSQL (every role may); worthless below")
	}

	// What the cluster listens on, asked as the test's superuser.
	admin, err := pgx.Connect(ctx, bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var listen, sockDirs string
	if err := admin.QueryRow(ctx, "select current_setting('listen_addresses'), current_setting('unix_socket_directories')").Scan(&listen, &sockDirs); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, h := range strings.Split(listen, ",") {
		switch h = strings.TrimSpace(h); h {
		case "":
		case "*", "0.0.0.0", "::":
			hosts = append(hosts, "127.0.0.1", "::1")
		case "localhost":
			hosts = append(hosts, "127.0.0.1")
		default:
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		t.Fatalf("the cluster listens on no TCP address (listen_addresses = %q): nothing to attack?", listen)
	}
	meta := metadataDB(t, s)
	targets := []string{pgName, "postgres", "template1", meta}
	refusedTCP := 0
	for _, h := range hosts {
		for _, target := range targets {
			cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s sslmode=prefer connect_timeout=10", h, port))
			if err != nil {
				t.Fatal(err)
			}
			cfg.User, cfg.Password, cfg.Database = role, known, target
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err == nil {
				c.Close(ctx)
				t.Errorf("direct login as %s to %s at %s: logged in with the tenant-set password", role, target, net.JoinHostPort(h, port))
				continue
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "pg_hba.conf rejects") {
				t.Errorf("direct login as %s to %s at %s: %v; want pg_hba.conf rejects (SQLSTATE 28000)", role, target, net.JoinHostPort(h, port), err)
				continue
			}
			refusedTCP++
		}
	}
	record(t, "direct TCP login with the tenant-set password on every listen address (own db, postgres, template1, metadata db)",
		fmt.Sprintf("refused by pg_hba.conf, SQLSTATE 28000 (%d of %d attempts on %s)", refusedTCP, len(hosts)*len(targets), strings.Join(hosts, ", ")))

	// The Unix socket: another OS user cannot even open it.
	dir := strings.TrimSpace(strings.Split(sockDirs, ",")[0])
	if !strings.HasPrefix(dir, "/") {
		t.Fatalf("the cluster has no Unix socket directory (%q)", sockDirs)
	}
	t.Run("socket as another OS user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("acting as the OS user nobody needs root: run the stress suite as root, as CI and make test do (the cluster then runs as another OS user than the test)")
		}
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Fatalf("setpriv (util-linux) is needed to act as another OS user: %v", err)
		}
		psql, err := exec.LookPath("psql")
		if err != nil {
			t.Fatalf("psql is needed: %v", err)
		}
		socketAsNobody(t, ctx, setpriv, psql, dir, port, role, known, targets)
	})

	// Even bitd's OS user (root here) reaches only the role's own database.
	sock, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s connect_timeout=10", dir, port))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		cfg := sock.Copy()
		cfg.User, cfg.Password, cfg.Database = role, known, target
		c, err := pgx.ConnectConfig(ctx, cfg)
		if target == pgName {
			if err != nil {
				t.Errorf("bitd's path (socket, own database) refused: %v", err)
			} else {
				c.Close(ctx)
			}
			continue
		}
		var pe *pgconn.PgError
		if err == nil {
			c.Close(ctx)
			t.Errorf("tenant role on the socket to %s: logged in", target)
		} else if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "pg_hba.conf rejects") {
			t.Errorf("tenant role on the socket to %s: %v; want pg_hba.conf rejects (28000)", target, err)
		}
	}
	record(t, "tenant role on the Unix socket (as bitd's OS user) to template1, postgres, the metadata db", "refused by pg_hba.conf (samerole), SQLSTATE 28000")
	record(t, "reach template1 to plant an object (a large object) that lands in every later database",
		"no login to template1 on any address or the socket, so nothing to plant")

	// Neighbours' sessions are hidden.
	for _, q := range []string{"select count(*) from pg_stat_activity", "select count(*) from pg_stat_get_activity(null)"} {
		var pe *pgconn.PgError
		if _, err := m.Exec(ctx, q); !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("mallory: %s: %v; want permission denied (42501)", q, err)
		}
	}
	record(t, "reader reads pg_stat_activity / pg_stat_get_activity(NULL) over the wire", "permission denied (42501): other tenants' sessions hidden")

	// The other readers are unaffected, over HTTP and over the wire.
	alice.mustQuery(t, db, "insert into t values ('after')")
	r := bob.query(t, db, "select count(*) from t")
	if r.Status != 200 || !strings.Contains(string(r.Raw), "[[2]]") {
		t.Fatalf("bob over HTTP after mallory's password change: %d %s", r.Status, r.Raw)
	}
	// The shared reader role: mallory flips the shared reader role's password in
	// a loop while bob opens new wire sessions; none of bob's may fail.
	flipCtx, stopFlip := context.WithCancel(ctx)
	flips := make(chan int, 1)
	go func() {
		n := 0
		for i := 0; flipCtx.Err() == nil; i++ {
			if _, err := m.Exec(flipCtx, fmt.Sprintf("ALTER ROLE CURRENT_USER PASSWORD '%s-%d'", known, i)); err == nil {
				n++
			}
		}
		flips <- n
	}()
	const logins = 20
	for i := range logins {
		c, err := proxyConnect(ctx, s.PGAddr, db, bobKey)
		if err != nil {
			stopFlip()
			t.Fatalf("bob's wire login %d while mallory flips the role's password: %v", i, err)
		}
		var n int
		err = c.QueryRow(ctx, "select count(*) from t").Scan(&n)
		c.Close(ctx)
		if err != nil || n != 2 {
			stopFlip()
			t.Fatalf("bob over the wire: %d rows, %v", n, err)
		}
	}
	stopFlip()
	nflips := <-flips
	if nflips == 0 {
		t.Fatal("mallory's password flips all failed: the test proved nothing")
	}
	record(t, "other readers while a reader flips the shared role's password in a loop",
		fmt.Sprintf("HTTP works; %d of %d new wire logins work during %d password changes", logins, logins, nflips))
	if !strings.Contains(s.Logs(), "PostgreSQL refuses tenant roles at") {
		t.Errorf("bitd's start-up lock-down check did not report the cluster locked:\n%s", lastLines(s.Logs(), 40))
	}
}

// socketAsNobody runs psql as the OS user nobody against the cluster's Unix
// socket, as role with the tenant-set password, to each target database:
// the socket directory (0700) must refuse it before PostgreSQL sees it.
func socketAsNobody(t *testing.T, ctx context.Context, setpriv, psql, dir, port, role, known string, targets []string) {
	for _, target := range targets {
		cmd := exec.CommandContext(ctx, setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", psql,
			fmt.Sprintf("host=%s port=%s user=%s dbname=%s connect_timeout=10", dir, port, role, target), "-Atc", "select 'in'")
		cmd.Env = []string{"PGPASSWORD=" + known, "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err == nil || strings.Contains(string(out), "in\n") {
			t.Errorf("psql as nobody on %s to %s: logged in (%s)", dir, target, out)
			continue
		}
		if !strings.Contains(string(out), "Permission denied") {
			t.Errorf("psql as nobody on %s to %s: %s; want Permission denied", dir, target, out)
		}
	}
	record(t, "direct login on the Unix socket as another OS user (nobody), own db and the others", "refused: Permission denied (socket directory 0700)")
}

// metadataDB returns the --metadata-db of the running bitd.
func metadataDB(t *testing.T, s *bitdtest.Server) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(s.Pid()), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "--metadata-db" && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--metadata-db="); ok {
			return v
		}
	}
	t.Fatalf("bitd's command line has no --metadata-db: %q", args)
	return ""
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
