package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// haproxyForwarding is HAProxy in front of one bitd: the HTTP port with
// "option forwardfor" (X-Forwarded-For), the wire port with send-proxy-v2
// (the PROXY protocol, version 2).
const haproxyForwarding = `global
	maxconn 256

defaults
	timeout connect 2s
	timeout client 1m
	timeout server 1m

frontend http
	mode http
	bind %[1]s
	default_backend bitd_http

backend bitd_http
	mode http
	option forwardfor
	server b1 %[2]s

frontend pg
	mode tcp
	bind %[3]s
	default_backend bitd_pg

backend bitd_pg
	mode tcp
	server b1 %[4]s send-proxy-v2
`

// freeLoopback returns a 127.0.0.1 host:port that was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHAProxy runs HAProxy (the Debian package) with cfg in its own
// process group, waits until addr accepts connections, and stops it by
// its pid in t.Cleanup.
func startHAProxy(t *testing.T, cfg, addr string) {
	t.Helper()
	bitdtest.StartHAProxy(t, cfg, addr)
}

// dialerFrom dials from the loopback address src (127.0.0.2, …), so that
// one machine has several clients.
func dialerFrom(src string) *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
}

// httpFrom is an HTTP client whose connections come from src.
func httpFrom(src string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialerFrom(src).DialContext}}
}

// loginFrom posts a login and returns its status and error code ("" on success).
func loginFrom(t *testing.T, c *http.Client, endpoint, user, password string, header ...string) (int, string) {
	t.Helper()
	body, _ := jsonx.Marshal(map[string]string{"username": user, "password": password})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint+"/auth/v1/login", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("login at %s: %v", endpoint, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		Code string `json:"code"`
	}
	_ = jsonx.Unmarshal(raw, &out)
	return res.StatusCode, out.Code
}

// wireFrom connects to addr (account/db database, password cred) from
// the loopback address src over TLS and returns the connection and its
// local address (what the proxy header names).
func wireFrom(ctx context.Context, src, addr, cred, database string) (*pgx.Conn, string, error) {
	cfg, err := pgx.ParseConfig("postgres://any@" + addr + "/x?sslmode=require&connect_timeout=10")
	if err != nil {
		return nil, "", err
	}
	cfg.Password, cfg.Database = cred, database
	var local string
	d := dialerFrom(src)
	cfg.DialFunc = func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, a)
		if err == nil && local == "" {
			local = c.LocalAddr().String()
		}
		return c, err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	return c, local, err
}

// TestE2EClientAddressBehindHAProxy runs real HAProxy in front of bitd,
// which trusts it (--trusted-proxies 127.0.0.1, HAProxy's source) and
// reads the PROXY protocol on the wire port (--wire-proxy-protocol).
// Clients on 127.0.0.2 and 127.0.0.3 are told apart through HAProxy, over
// HTTP (per-address login limit, access log) and over the wire (logs,
// TLS and CancelRequest after the PROXY header); headers and PROXY
// headers from untrusted peers count for nothing.
func TestE2EClientAddressBehindHAProxy(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--trusted-proxies", "127.0.0.1", "--wire-proxy-protocol"))
	httpFront, pgFront := freeLoopback(t), freeLoopback(t)
	startHAProxy(t, fmt.Sprintf(haproxyForwarding, httpFront, strings.TrimPrefix(s.Endpoint, "http://"), pgFront, s.PGAddr), pgFront)
	viaHAProxy := "http://" + httpFront
	a, b := httpFrom("127.0.0.2"), httpFrom("127.0.0.3")
	user := bitdtest.UniqueName("ca_")
	s.NewUser(t, user, "right-password-1")

	t.Run("http login limit per client address", func(t *testing.T) {
		// The per-address limit is 20 failures a window; distinct user
		// names keep the per-user limit (5) out of the way.
		for i := range 20 {
			if st, code := loginFrom(t, a, viaHAProxy, fmt.Sprintf("nobody%d", i), "wrong"); st != http.StatusUnauthorized {
				t.Fatalf("failure %d from 127.0.0.2: %d %s, want 401", i+1, st, code)
			}
		}
		if st, code := loginFrom(t, a, viaHAProxy, "nobody-more", "wrong"); st != http.StatusTooManyRequests || code != "rate_limited" {
			t.Fatalf("21st failure from 127.0.0.2: %d %s, want 429 rate_limited", st, code)
		}
		// The right password does not help the locked-out address …
		if st, code := loginFrom(t, a, viaHAProxy, user, "right-password-1"); st != http.StatusTooManyRequests {
			t.Fatalf("right password from locked-out 127.0.0.2: %d %s, want 429", st, code)
		}
		// … while 127.0.0.3, through the same HAProxy, has its own bucket.
		if st, code := loginFrom(t, b, viaHAProxy, "nobody-b", "wrong"); st != http.StatusUnauthorized {
			t.Fatalf("a failure from 127.0.0.3 through HAProxy: %d %s, want 401 (not locked out)", st, code)
		}
		if st, code := loginFrom(t, b, viaHAProxy, user, "right-password-1"); st != http.StatusOK {
			t.Fatalf("right password from 127.0.0.3 through HAProxy: %d %s, want 200", st, code)
		}
	})

	t.Run("spoofed X-Forwarded-For from an untrusted peer is ignored", func(t *testing.T) {
		// Straight to bitd from 127.0.0.3, claiming to be the locked-out
		// 127.0.0.2: bitd counts 127.0.0.3.
		if st, code := loginFrom(t, b, s.Endpoint, "nobody-spoof", "wrong", "X-Forwarded-For", "127.0.0.2", "Forwarded", "for=127.0.0.2"); st != http.StatusUnauthorized {
			t.Fatalf("127.0.0.3 posing as 127.0.0.2: %d %s, want 401", st, code)
		}
		// And the locked-out 127.0.0.2 cannot escape by naming another address.
		if st, code := loginFrom(t, a, s.Endpoint, user, "right-password-1", "X-Forwarded-For", "127.0.0.9"); st != http.StatusTooManyRequests {
			t.Fatalf("127.0.0.2 posing as 127.0.0.9: %d %s, want 429", st, code)
		}
		// Through HAProxy a forged entry left of HAProxy's own is not believed either.
		if st, code := loginFrom(t, a, viaHAProxy, user, "right-password-1", "X-Forwarded-For", "127.0.0.9"); st != http.StatusTooManyRequests {
			t.Fatalf("127.0.0.2 posing as 127.0.0.9 through HAProxy: %d %s, want 429", st, code)
		}
	})

	t.Run("access log shows the client address", func(t *testing.T) {
		for _, want := range []string{
			`path=/auth/v1/login status=429 .*client=127\.0\.0\.2 `,
			`path=/auth/v1/login status=200 .*client=127\.0\.0\.3 `,
		} {
			if logMatch(t, s, want) == nil {
				t.Errorf("no access log line matches %q:\n%s", want, tail(s.Logs(), 40))
			}
		}
		if m := regexp.MustCompile(`path=/auth/v1/login .*client=127\.0\.0\.1 `).FindString(s.Logs()); m != "" {
			t.Errorf("a login was logged with HAProxy's address: %s", m)
		}
	})

	t.Run("wire through HAProxy: client address, login limit, TLS, cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		name := bitdtest.UniqueName("cadb")
		want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", s.APIKey, map[string]any{"name": name}), 201, "")
		db := s.User + "/" + name

		_, local, err := wireFrom(ctx, "127.0.0.3", pgFront, "not-a-key", db)
		if sqlState(err) != "28P01" {
			t.Fatalf("wrong password through HAProxy from 127.0.0.3: %v, want 28P01", err)
		}
		line := logMatch(t, s, `msg="proxy: password authentication failed" remote=(\S+)`)
		if line == nil || line[1] != local {
			t.Fatalf("bitd logged the failed password from %v, want the client %s:\n%s", line, local, tail(s.Logs(), 20))
		}

		// 127.0.0.2 spent its failures over HTTP: one bucket per address.
		_, local, err = wireFrom(ctx, "127.0.0.2", pgFront, "not-a-key", db)
		if sqlState(err) != "28000" || !strings.Contains(err.Error(), "too many failed logins from this address (127.0.0.2)") {
			t.Fatalf("wrong password from the locked-out 127.0.0.2: %v, want 28000 too many failed logins", err)
		}
		if line := logMatch(t, s, `msg="proxy: login limited" remote=(\S+)`); line == nil || line[1] != local {
			t.Errorf("bitd logged the limited login from %v, want the client %s", line, local)
		}
		if _, _, err = wireFrom(ctx, "127.0.0.2", pgFront, s.APIKey, db); sqlState(err) != "28000" {
			t.Fatalf("right key from the locked-out 127.0.0.2: %v, want 28000", err)
		}

		// 127.0.0.4 locks itself out over the wire alone.
		for i := range 20 {
			if _, _, err := wireFrom(ctx, "127.0.0.4", pgFront, "not-a-key", db); sqlState(err) != "28P01" {
				t.Fatalf("wire failure %d from 127.0.0.4: %v, want 28P01", i+1, err)
			}
		}
		if _, _, err := wireFrom(ctx, "127.0.0.4", pgFront, "not-a-key", db); sqlState(err) != "28000" {
			t.Fatalf("21st wire failure from 127.0.0.4: %v, want 28000 too many failed logins", err)
		}

		// 127.0.0.3, through the same HAProxy, is not locked out.
		c, _, err := wireFrom(ctx, "127.0.0.3", pgFront, s.APIKey, db)
		if err != nil {
			t.Fatalf("through HAProxy from 127.0.0.3: %v", err)
		}
		defer c.Close(ctx)
		if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
			t.Errorf("the session through HAProxy is not TLS: %T", c.PgConn().Conn())
		}
		var who string
		if err := c.QueryRow(ctx, "select current_database()").Scan(&who); err != nil || who == "" {
			t.Fatalf("query through HAProxy: %q, %v", who, err)
		}
		// A CancelRequest is a new connection through HAProxy, with its own
		// PROXY header, then the cancel key.
		go func() {
			time.Sleep(500 * time.Millisecond)
			_ = c.PgConn().CancelRequest(ctx)
		}()
		start := time.Now()
		_, err = c.Exec(ctx, "select pg_sleep(30)")
		if sqlState(err) != "57014" {
			t.Fatalf("cancelled query through HAProxy: %v after %v, want 57014 query_canceled", err, time.Since(start))
		}
	})

	t.Run("wire PROXY header only from trusted peers", func(t *testing.T) {
		for _, tc := range []struct {
			name, src string
			send      string
			want      string
		}{
			{"trusted peer without a header", "127.0.0.1", "\x00\x00\x00\x08\x04\xd2\x16\x2f", "a PROXY protocol header is required"},
			{"untrusted peer with a header", "127.0.0.2", "PROXY TCP4 127.0.0.9 127.0.0.1 1000 2000\r\n", "only from the addresses of --trusted-proxies"},
		} {
			c, err := dialerFrom(tc.src).DialContext(t.Context(), "tcp", s.PGAddr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(c)
			c.Close()
			if len(got) == 0 || got[0] != 'E' || !strings.Contains(string(got), "08P01") || !strings.Contains(string(got), tc.want) {
				t.Errorf("%s: bitd answered %q, want an ErrorResponse 08P01 saying %q", tc.name, got, tc.want)
			}
		}
	})
}

// logMatch waits up to 5 s (bitd batches its log writes) for a line of
// bitd's log to match re and returns the submatches, or nil.
func logMatch(t *testing.T, s *bitdtest.Server, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	_ = testwait.Wait(t.Context(), 5*time.Second, func() error {
		if m = rx.FindStringSubmatch(s.Logs()); m == nil {
			return errors.New("no log line matches " + re)
		}
		return nil
	})
	return m
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestTrustedProxiesFlags checks that bitd refuses a malformed
// --trusted-proxies and --wire-proxy-protocol without it, naming the flag.
func TestTrustedProxiesFlags(t *testing.T) {
	t.Parallel()
	bin := bitdtest.Bitd(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, `--trusted-proxies: "10.0.0.0/33" is not an address or CIDR range`},
		{[]string{"--trusted-proxies", "10.0.0.1,balancer.internal"}, `--trusted-proxies: "balancer.internal" is not an address`},
		{[]string{"--wire-proxy-protocol"}, "--wire-proxy-protocol needs --trusted-proxies"},
	} {
		cmd := exec.Command(bin, append([]string{"serve", "--database-url", "postgres://nobody@127.0.0.1:1/x"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("bitd serve %s: %v, %q; want exit status 2 saying %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}
