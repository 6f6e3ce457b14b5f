package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/tlsconf"
	"github.com/jackc/pgx/v5"
)

// acmeDomain is the name bitd obtains a certificate for; pebble's resolver
// (pebble-challtestsrv) answers 127.0.0.1 for it.
const acmeDomain = "bitd.example.com"

// TestACMEPebble runs Pebble, a real ACME server, with its challenge test
// server as DNS resolver, all on loopback: bitd obtains a certificate by
// answering the TLS-ALPN-01 challenge on its HTTPS port, serves it on HTTPS
// (HTTP/2) and on the wire proxy, and orders a new one on SIGHUP.
func TestACMEPebble(t *testing.T) {
	t.Parallel()
	pebble, challsrv := goTool(t, "pebble"), goTool(t, "pebble-challtestsrv")
	dir := t.TempDir()

	// Pebble's own HTTPS certificate, from a CA bitd is told to trust
	// (--acme-ca-cert).
	ca, err := tlsconf.EnsureDevCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	httpsPort, dnsPort, dirPort, mgmtPort, challMgmt := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)

	// The challenge test server is only pebble's DNS: every name is 127.0.0.1.
	startTool(t, challsrv, nil, "-dnsserver", "127.0.0.1:"+dnsPort, "-management", "127.0.0.1:"+challMgmt,
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	cfg := fmt.Sprintf(`{"pebble": {
		"listenAddress": "127.0.0.1:%s", "managementListenAddress": "127.0.0.1:%s",
		"certificate": %q, "privateKey": %q,
		"httpPort": %s, "tlsPort": %s, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": {"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
		"profiles": {"default": {"description": "default", "validityPeriod": 7776000}}}}`,
		dirPort, mgmtPort, ca.Cert, ca.Key, freePort(t), httpsPort)
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Real validation: no PEBBLE_VA_ALWAYS_VALID; NOSLEEP only skips
	// Pebble's artificial delay, NONCEREJECT=0 its random bad nonces.
	startTool(t, pebble, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", cfgPath, "-dnsserver", "127.0.0.1:"+dnsPort)
	caPool, err := tlsconf.LoadCertPool(ca.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pebbleClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	directory := "https://127.0.0.1:" + dirPort + "/dir"
	waitUntil(t, 30*time.Second, "pebble serves its directory", func() bool {
		res, err := pebbleClient.Get(directory)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})

	s := bitdtest.Start(t, bitdtest.Args("--http", "127.0.0.1:"+httpsPort, "--acme-domain", acmeDomain,
		"--acme-email", "ops@example.com", "--acme-directory", directory, "--acme-ca-cert", ca.CACert))
	if s.Endpoint != "https://127.0.0.1:"+httpsPort {
		t.Fatalf("endpoint %q", s.Endpoint)
	}

	// Pebble's root for this run: what a client of bitd trusts.
	res, err := pebbleClient.Get("https://127.0.0.1:" + mgmtPort + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(res.Body)
	res.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %s", rootPEM)
	}

	// served returns the serial of the certificate bitd serves for the
	// domain on addr, verified against pebble's root ("" until it has one).
	served := func(addr string) string {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: acmeDomain, RootCAs: roots, NextProtos: []string{"h2"}})
		if err != nil {
			return ""
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
	}
	var first string
	waitUntil(t, 90*time.Second, "bitd serves a certificate from pebble", func() bool {
		first = served("127.0.0.1:" + httpsPort)
		return first != ""
	})

	// The account key and the certificate are cached under DATA/acme
	// (autocert writes the certificate there just after it starts serving
	// it, so a handshake can see it first).
	for _, f := range []string{"acme_account+key", acmeDomain} {
		waitUntil(t, 30*time.Second, "the ACME cache holds "+f, func() bool {
			_, err := os.Stat(filepath.Join(s.DataDir, "acme", f))
			return err == nil
		})
	}

	// HTTPS with HTTP/2 under that certificate.
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+httpsPort)
		}}
	hres, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + acmeDomain + ":" + httpsPort + "/v2beta/db/")
	if err != nil {
		t.Fatal(err)
	}
	hres.Body.Close()
	if hres.ProtoMajor != 2 || hres.StatusCode != 401 {
		t.Fatalf("%s %d, want HTTP/2 401", hres.Proto, hres.StatusCode)
	}

	// The wire proxy serves the same certificate (pgx verify-full).
	pgHost, pgPort, _ := net.SplitHostPort(s.PGAddr)
	pc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=verify-full", pgHost, pgPort, s.User, s.User+"/nodb"))
	if err != nil {
		t.Fatal(err)
	}
	pc.Password = s.APIKey
	pc.TLSConfig.RootCAs, pc.TLSConfig.ServerName = roots, acmeDomain
	_, err = pgx.ConnectConfig(t.Context(), pc)
	// The handshake passed when the answer is PostgreSQL's (no such
	// database), not a certificate failure.
	if err == nil || !strings.Contains(err.Error(), "SQLSTATE") {
		t.Fatalf("wire proxy with the ACME certificate: %v, want a PostgreSQL error after a verified handshake", err)
	}

	// Renewal on request: SIGHUP orders a new certificate.
	if err := syscall.Kill(s.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 90*time.Second, "bitd serves a renewed certificate", func() bool {
		sn := served("127.0.0.1:" + httpsPort)
		return sn != "" && sn != first
	})
	// bitd's log is written in batches: wait for the line.
	waitUntil(t, 30*time.Second, "bitd logs the renewal", func() bool {
		return strings.Contains(s.Logs(), "ACME certificate renewed")
	})
}

// goTool is a Go tool installed by scripts/deps.sh into GOPATH/bin.
func goTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed: run scripts/deps.sh (it installs pebble v2.10.3)", name)
	return ""
}

// startTool runs a helper server until the test ends; its output goes to
// the test log on failure.
func startTool(t *testing.T, bin string, env []string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", filepath.Base(bin), b)
		}
	})
}

// freePort is a loopback TCP port free at the time of the call.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// waitUntil polls cond until it holds or limit passes.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, limit, func() error {
		if !cond() {
			return errors.New("waiting until " + what)
		}
		return nil
	})
}
