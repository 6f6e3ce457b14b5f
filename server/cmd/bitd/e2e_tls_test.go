package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/tlsconf"
	"github.com/jackc/pgx/v5"
)

// TestTLSDevCA runs `bitd dev --tls` and checks that every client verifies
// its certificate against the dev CA, and refuses it for another name:
// core and curl over HTTPS with HTTP/2, psql (verify-full), pgx
// (verify-full), node-postgres (NODE_EXTRA_CA_CERTS) and bit psql.
func TestTLSDevCA(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.TLS())
	if !strings.HasPrefix(s.Endpoint, "https://") {
		t.Fatalf("endpoint %q, want https://", s.Endpoint)
	}
	if s.CACert != filepath.Join(s.DataDir, "tls", "ca.pem") {
		t.Fatalf("BITKIT_CA_CERT = %q, want the CA under the data directory", s.CACert)
	}
	caPEM, err := os.ReadFile(s.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("BITKIT_CA_CERT holds no certificate")
	}
	u, _ := url.Parse(s.Endpoint)
	_, httpPort, _ := net.SplitHostPort(u.Host)
	pgHost, pgPort, _ := net.SplitHostPort(s.PGAddr)

	// core, verifying against the CA: it works, over HTTP/1.1 (core's
	// default) and over HTTP/2 (WithHTTP2; core's tests check which one
	// each option speaks).
	c2, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey), core.WithRootCAs(pool), core.WithHTTP2())
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey), core.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	dbName := s.User + "/tlsdb"
	if _, err := c.CreateDatabase(t.Context(), core.CreateDatabaseRequest{Name: "tlsdb"}); err != nil {
		t.Fatalf("core over HTTPS: %v", err)
	}
	res, err := c.Query(t.Context(), dbName, "SELECT 41 + 1")
	if err != nil || fmt.Sprint(res.Rows) != "[[42]]" {
		t.Fatalf("core query over HTTPS: %v %v", res, err)
	}
	res, err = c2.Query(t.Context(), dbName, "SELECT 40 + 2")
	if err != nil || fmt.Sprint(res.Rows) != "[[42]]" {
		t.Fatalf("core query over HTTPS with HTTP/2: %v %v", res, err)
	}
	t.Run("core", func(t *testing.T) {
		t.Parallel()
		// bitd offers HTTP/2: a Go transport that allows it (as
		// core.WithHTTP2's does) speaks it.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		hres, err := (&http.Client{Transport: tr}).Get(s.Endpoint + "/v2beta/db/")
		if err != nil {
			t.Fatal(err)
		}
		hres.Body.Close()
		if hres.ProtoMajor != 2 {
			t.Fatalf("protocol %s, want HTTP/2", hres.Proto)
		}
		// Without the CA: refused.
		c0, _ := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
		_, err = c0.Query(t.Context(), dbName, "SELECT 1")
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) {
			t.Fatalf("core without the CA: %v, want an unknown-authority error", err)
		}
		// With the CA but another name: refused.
		other := "https://other.example:" + httpPort
		tr2 := http.DefaultTransport.(*http.Transport).Clone()
		tr2.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, u.Host)
		}
		c2, err := core.NewClient(other, core.WithAPIKey(s.APIKey), core.WithTransport(tr2), core.WithRootCAs(pool),
			core.WithRetryPolicy(core.RetryPolicy{MaxAttempts: 1}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c2.Query(t.Context(), dbName, "SELECT 1")
		var hne x509.HostnameError
		if !errors.As(err, &hne) {
			t.Fatalf("core for other.example: %v, want a host-name error", err)
		}
	})
	t.Run("curl", func(t *testing.T) {
		t.Parallel()
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Fatal("curl is not installed: run scripts/deps.sh (make deps), which installs it")
		}
		out, err := exec.CommandContext(t.Context(), curl, "-sS", "--http2", "--cacert", s.CACert,
			"-o", "/dev/null", "-w", "%{http_version} %{http_code}", s.Endpoint+"/v2beta/db/").CombinedOutput()
		if err != nil || string(out) != "2 401" {
			t.Fatalf("curl --http2 --cacert: %q %v (want HTTP/2, 401 without credentials)", out, err)
		}
		out, err = exec.CommandContext(t.Context(), curl, "-sS", "--http2", "--cacert", s.CACert,
			"--resolve", "other.example:"+httpPort+":127.0.0.1", "-o", "/dev/null",
			"https://other.example:"+httpPort+"/v2beta/").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "other.example") {
			t.Fatalf("curl for other.example: %q %v, want a certificate-name failure", out, err)
		}
	})
	t.Run("psql", func(t *testing.T) {
		t.Parallel()
		psql := findPsql(t)
		run := func(conninfo string) (string, error) {
			cmd := exec.CommandContext(t.Context(), psql, "-XAtq", "-c", "SELECT 6 * 7", conninfo)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+s.APIKey, "PGCONNECT_TIMEOUT=10")
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		base := fmt.Sprintf("port=%s user=%s dbname=%s sslmode=verify-full sslrootcert=%s", pgPort, s.User, dbName, s.CACert)
		if out, err := run("host=" + pgHost + " " + base); err != nil || out != "42" {
			t.Fatalf("psql sslmode=verify-full: %q %v", out, err)
		}
		if out, err := run("host=localhost " + base); err != nil || out != "42" {
			t.Fatalf("psql sslmode=verify-full host=localhost: %q %v", out, err)
		}
		out, err := run("host=other.example hostaddr=" + pgHost + " " + base)
		if err == nil || !strings.Contains(out, "does not match host name") {
			t.Fatalf("psql for other.example: %q %v, want a host-name mismatch", out, err)
		}
	})
	t.Run("pgx", func(t *testing.T) {
		t.Parallel()
		cs := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=verify-full sslrootcert=%s", pgHost, pgPort, s.User, dbName, s.CACert)
		cfg, err := pgx.ParseConfig(cs)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Password = s.APIKey
		conn, err := pgx.ConnectConfig(t.Context(), cfg)
		if err != nil {
			t.Fatalf("pgx verify-full: %v", err)
		}
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT 42").Scan(&n); err != nil || n != 42 {
			t.Fatalf("pgx query: %d %v", n, err)
		}
		conn.Close(t.Context())
		cfg.TLSConfig.ServerName = "other.example"
		_, err = pgx.ConnectConfig(t.Context(), cfg)
		var hne x509.HostnameError
		if !errors.As(err, &hne) {
			t.Fatalf("pgx for other.example: %v, want a host-name error", err)
		}
	})
	t.Run("node-postgres", func(t *testing.T) {
		t.Parallel()
		node := bitdtest.Node(t)
		dir := filepath.Join(bitdtest.RepoRoot(), "server", "cmd", "bitd", "testdata", "nodepg")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "pg")); err != nil {
			t.Fatalf("npm pg is not installed in %s: run scripts/deps.sh", dir)
		}
		run := func(extra ...string) (string, error) {
			cmd := exec.CommandContext(t.Context(), node, "verify.js")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+s.CACert, "PGHOST="+pgHost, "PGPORT="+pgPort,
				"PGUSER="+s.User, "PGPASSWORD="+s.APIKey, "PGDATABASE="+dbName, "NODE_TLS_REJECT_UNAUTHORIZED=")
			cmd.Env = append(cmd.Env, extra...)
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		if out, err := run(); err != nil || out != "ok 1" {
			t.Fatalf("node-postgres ssl: true with NODE_EXTRA_CA_CERTS: %q %v", out, err)
		}
		out, err := run("PGSERVERNAME=other.example")
		if err == nil || !strings.Contains(out, "ERR_TLS_CERT_ALTNAME_INVALID") {
			t.Fatalf("node-postgres for other.example: %q %v, want ERR_TLS_CERT_ALTNAME_INVALID", out, err)
		}
		// Without the CA: refused too.
		cmd := exec.CommandContext(t.Context(), node, "verify.js")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PGHOST="+pgHost, "PGPORT="+pgPort, "PGUSER="+s.User, "PGPASSWORD="+s.APIKey, "PGDATABASE="+dbName)
		if b, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("node-postgres without the CA connected: %s", b)
		}
	})
	t.Run("bit", func(t *testing.T) {
		t.Parallel()
		bit := bitdtest.Bit(t)
		env := append(os.Environ(), "BITKIT_ENDPOINT="+s.Endpoint, "BITKIT_API_KEY="+s.APIKey, "BITKIT_PG_ADDR="+s.PGAddr,
			"BITKIT_CACHE_DIR="+t.TempDir(), "BITKIT_PSQL="+findPsql(t))
		run := func(env []string, args ...string) (string, error) {
			cmd := exec.CommandContext(t.Context(), bit, args...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		out, err := run(append(env, "BITKIT_CA_CERT="+s.CACert), "connect", "-d", dbName, "--format", "json")
		if err != nil {
			t.Fatalf("bit connect: %s %v", out, err)
		}
		var ci struct {
			SSLMode     string `json:"sslmode"`
			SSLRootCert string `json:"sslrootcert"`
			URL         string `json:"url"`
		}
		if err := jsonx.Unmarshal([]byte(out), &ci); err != nil || ci.SSLMode != "verify-full" || ci.SSLRootCert != s.CACert ||
			!strings.Contains(ci.URL, "sslmode=verify-full") {
			t.Fatalf("bit connect with BITKIT_CA_CERT: %s %v", out, err)
		}
		out, err = run(append(env, "BITKIT_CA_CERT="+s.CACert), "psql", "-d", dbName, "--", "-XAtq", "-c", "SELECT 7 * 6")
		if err != nil || out != "42" {
			t.Fatalf("bit psql (verify-full): %q %v", out, err)
		}
		// Without the CA, bit refuses the HTTPS endpoint.
		if out, err := run(env, "db", "list"); err == nil || !strings.Contains(out, "certificate") {
			t.Fatalf("bit without BITKIT_CA_CERT: %q %v, want a certificate error", out, err)
		}
	})
}

// findPsql is psql from PATH or PostgreSQL 15's bin directory.
func findPsql(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("psql is not installed: run scripts/deps.sh (postgresql-client-15)")
	return ""
}

// TestTLSCertFilesReload runs bitd with --tls-cert/--tls-key: HTTPS and the
// wire proxy serve that certificate, and both serve a replacement written
// over the files without a restart, then another one after SIGHUP.
func TestTLSCertFilesReload(t *testing.T) {
	t.Parallel()
	caDir := t.TempDir()
	ca, err := tlsconf.EnsureDevCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	cert, key := filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem")
	if err := tlsconf.IssueDevCert(caDir, []string{"one.example", "127.0.0.1"}, cert, key); err != nil {
		t.Fatal(err)
	}
	s := bitdtest.Start(t, bitdtest.Args("--tls-cert", cert, "--tls-key", key))
	pool, err := tlsconf.LoadCertPool(ca.CACert)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.Endpoint)
	if u.Scheme != "https" {
		t.Fatalf("endpoint %s, want https", s.Endpoint)
	}
	// names returns the first DNS name of the certificates HTTPS and the
	// wire proxy serve, verified against the CA.
	names := func() (httpsName, wireName string) {
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if c, err := tls.Dial("tcp", u.Host, cfg); err == nil {
			httpsName = c.ConnectionState().PeerCertificates[0].DNSNames[0]
			c.Close()
		}
		raw, err := net.Dial("tcp", s.PGAddr)
		if err != nil {
			return
		}
		defer raw.Close()
		// SSLRequest: length 8, code 80877103; the proxy answers 'S'.
		if _, err := raw.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
			return
		}
		b := make([]byte, 1)
		if _, err := raw.Read(b); err != nil || b[0] != 'S' {
			return
		}
		c := tls.Client(raw, cfg)
		if c.Handshake() == nil {
			wireName = c.ConnectionState().PeerCertificates[0].DNSNames[0]
		}
		return
	}
	if h, w := names(); h != "one.example" || w != "one.example" {
		t.Fatalf("serving %q (HTTPS) and %q (wire), want one.example on both", h, w)
	}
	// Replaced on disk: picked up without a signal.
	if err := tlsconf.IssueDevCert(caDir, []string{"two.example", "127.0.0.1"}, cert, key); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "both listeners serve the replaced certificate", func() bool {
		h, w := names()
		return h == "two.example" && w == "two.example"
	})
	// A broken file is refused; the certificate in use stays.
	if err := os.WriteFile(cert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "bitd logs the refused reload", func() bool {
		return strings.Contains(s.Logs(), "TLS certificate not reloaded") || strings.Contains(s.Logs(), "cannot be loaded")
	})
	if h, w := names(); h != "two.example" || w != "two.example" {
		t.Fatalf("after a broken file: serving %q / %q, want two.example", h, w)
	}
	if strings.Contains(s.Logs(), "garbage") {
		t.Fatal("bitd logged the file's content")
	}
}
