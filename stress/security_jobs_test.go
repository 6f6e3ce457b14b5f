package stress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// proxyConnect opens a pgx connection through bitd's wire proxy with TLS
// (sslmode=require: bitd dev offers a self-signed certificate).
func proxyConnect(ctx context.Context, addr, db, password string) (*pgx.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=anyone sslmode=require connect_timeout=20", host, port))
	if err != nil {
		return nil, err
	}
	cfg.Database, cfg.Password = db, password
	return pgx.ConnectConfig(ctx, cfg)
}

// TestWireProxyIsolation: through the PostgreSQL wire proxy, user B's key
// cannot open user A's private database and a tampered key is refused, while
// A's own key works.
func TestWireProxyIsolation(t *testing.T) {
	s := startScanned(t)
	needWire(t, s)
	alice := newClient(s.Endpoint, s.APIKey)
	_, bobKey := otherUser(t, s, "bob")
	db := alice.createDB(t, "wire", true)
	alice.mustQuery(t, db, "create table secrets (v text); insert into secrets values ('crown jewels')")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := proxyConnect(ctx, s.PGAddr, db, s.APIKey)
	if err != nil {
		t.Fatalf("alice cannot open her own database through the proxy: %v", err)
	}
	var v string
	if err := conn.QueryRow(ctx, "select v from secrets").Scan(&v); err != nil || v != "crown jewels" {
		t.Fatalf("alice reads %q, %v through the proxy", v, err)
	}
	conn.Close(ctx)

	tampered := []byte(s.APIKey)
	tampered[len(tampered)/2] ^= 1
	for name, key := range map[string]string{
		"user B's key":          bobKey,
		"tampered key":          string(tampered),
		"empty password":        "",
		"key of A with a space": s.APIKey + " ",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := proxyConnect(ctx, s.PGAddr, db, key)
			if err == nil {
				var got string
				_ = conn.QueryRow(ctx, "select v from secrets").Scan(&got)
				conn.Close(ctx)
				t.Fatalf("%s opened alice's private database through the proxy (read %q)", name, got)
			}
			if key != "" && strings.Contains(err.Error(), key) {
				t.Fatalf("the credential was echoed in the proxy's error")
			}
			record(t, "wire proxy (TLS): "+name+" opens A's private database", "refused: "+firstLine(err.Error()))
		})
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}

// TestJobAndServiceAccountIDOR: user B asks for user A's import and export
// jobs and service account by id and gets 404 every time.
func TestJobAndServiceAccountIDOR(t *testing.T) {
	s := startScanned(t)
	alice := newClient(s.Endpoint, s.APIKey)
	bob, _ := otherUser(t, s, "bob")
	db := alice.createDB(t, "idor", true)

	imp := alice.startImport(t, db, "people", csvRows(10), "")
	if r := alice.waitJob(t, "import", imp, 2*time.Minute); r.str("state") != "DONE" {
		t.Fatalf("import failed: %s", r.Raw)
	}
	exp := alice.do(t, "POST", "/v2beta/db/"+db+"/export/", map[string]any{"query_string": "select * from people", "file_name": "p.csv"})
	if exp.Status != http.StatusAccepted {
		t.Fatalf("export: %d %s", exp.Status, exp.Raw)
	}
	sa := alice.do(t, "POST", "/v2beta/service-account/", map[string]any{"name": "robot", "role": "READER", "databases": []string{db}})
	if sa.Status != 201 && sa.Status != 200 {
		t.Fatalf("create service account: %d %s", sa.Status, sa.Raw)
	}
	said := fmt.Sprint(sa.Body["id"])

	probes := []struct{ name, method, path string }{
		{"GET A's import job", "GET", "/v2beta/import/" + imp},
		{"GET A's export job", "GET", "/v2beta/export/" + exp.str("id")},
		{"GET A's import job as an export", "GET", "/v2beta/export/" + imp},
		{"GET A's service account", "GET", "/v2beta/service-account/" + said},
		{"mint a key for A's service account", "POST", "/v2beta/service-account/" + said + "/api-key/"},
		{"revoke the keys of A's service account", "DELETE", "/v2beta/service-account/" + said + "/api-key/"},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			r := bob.do(t, p.method, p.path, nil)
			if r.Status != http.StatusNotFound {
				t.Fatalf("bob: %s %s: %d, want 404: %s", p.method, p.path, r.Status, r.Raw)
			}
			if r.str("code") == "" || r.str("error") == "" {
				t.Fatalf("error body lacks error/code: %s", r.Raw)
			}
			if k := r.str("api_key"); k != "" {
				remember(k)
				t.Fatal("bob got an API key for alice's service account")
			}
			record(t, "user B: "+p.name+" by id", "404")
		})
	}
	// A still sees everything that is hers.
	if r := alice.do(t, "GET", "/v2beta/service-account/"+said, nil); r.Status != 200 {
		t.Fatalf("alice cannot read her service account: %d %s", r.Status, r.Raw)
	}
	if r := alice.do(t, "GET", "/v2beta/import/"+imp, nil); r.Status != 200 {
		t.Fatalf("alice cannot read her job: %d %s", r.Status, r.Raw)
	}
}

// TestDownloadURLTampering: a DONE export's download_url works without an
// Authorization header; any change to it (signature, job id, expiry) is
// refused.
func TestDownloadURLTampering(t *testing.T) {
	s := startScanned(t)
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "dl", true)
	c.mustQuery(t, db, "create table t as select g as id, 'secret ' || g as v from generate_series(1, 20) g")
	_, dl := exportDone(t, c, db, map[string]any{"table_name": "t", "schema_name": "public", "file_name": "t.csv"})
	anon := newClient("", "")
	get := func(u string) result {
		r, err := anon.doE("GET", u, nil)
		if err != nil {
			t.Fatalf("GET download URL: %v", err)
		}
		return r
	}
	if r := get(dl); r.Status != 200 || !strings.Contains(string(r.Raw), "secret 20") {
		t.Fatalf("the genuine download_url: %d %.300s", r.Status, r.Raw)
	}
	i := strings.LastIndex(dl, "/")
	base, tok := dl[:i+1], dl[i+1:]
	payload, sig, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatalf("download token has no signature part: the format changed; update this test")
	}
	flip := func(s string, at int) string {
		b := []byte(s)
		if b[at] == 'A' {
			b[at] = 'B'
		} else {
			b[at] = 'A'
		}
		return string(b)
	}
	cases := map[string]string{
		"signature changed":           payload + "." + flip(sig, 3),
		"job id changed":              flip(payload, 2) + "." + sig,
		"expiry changed":              flip(payload, len(payload)-2) + "." + sig,
		"signature removed":           payload,
		"signature of another length": payload + "." + sig[:len(sig)-4],
		"garbage":                     "not-a-token",
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			r := get(base + bad)
			if r.Status == 200 || r.Status >= 500 || strings.Contains(string(r.Raw), "secret 1") {
				t.Fatalf("tampered download URL: %d %.300s", r.Status, r.Raw)
			}
			record(t, "download URL, token: "+name, fmt.Sprintf("refused (%d)", r.Status))
		})
	}
}

// serveMode runs `bitd serve` (production mode: file_url may reach public
// addresses only) on its own metadata database and returns its endpoint and
// an API key. bitd serve has no --ephemeral; its databases, roles and
// metadata database are dropped afterwards by a short `bitd dev --ephemeral`
// on the same metadata database and data directory.
func serveMode(t *testing.T) (endpoint, key string) {
	t.Helper()
	bin := bitdtest.Bitd(t)
	dbURL := bitdtest.DatabaseURL(t)
	dir := t.TempDir()
	meta := bitdtest.UniqueName("bitkit_t_")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(dir, "serve.log")
	t.Cleanup(func() { // after bitd serve has stopped (StartProcess's cleanup runs first)
		logs, _ := os.ReadFile(logPath)
		checkSecrets(t, "bitd serve", string(logs))
		dropWithDev(t, bin, dbURL, meta, dir)
	})
	exited := bitdtest.StartProcess(t, logPath, 20*time.Second, bin, "serve", "--database-url", dbURL, "--metadata-db", meta, "--http", addr, "--pg", "", "--data", dir).Exited
	endpoint = "http://" + addr
	testwait.Eventually(t, 90*time.Second, func() error {
		resp, err := http.Get(endpoint + "/v2beta/db/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			logs, _ := os.ReadFile(logPath)
			t.Fatalf("bitd serve exited before it was ready:\n%s", logs)
		default:
		}
		return fmt.Errorf("bitd serve not ready: %w", err)
	})
	admin := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"admin", "--database-url", dbURL, "--metadata-db", meta}, args...)...).Output()
		if err != nil {
			t.Fatalf("bitd admin %s: %v", args[0], err)
		}
		return strings.TrimSpace(string(out))
	}
	user := "ssrf" + randSuffix()
	admin("user", "create", user)
	key = admin("key", "create", user)
	remember(key)
	return endpoint, key
}

// dropWithDev drops what a bitd serve instance created (platform databases,
// roles, the metadata database) by running `bitd dev --ephemeral` on the same
// metadata database and data directory until it is ready, then stopping it.
func dropWithDev(t *testing.T, bin, dbURL, meta, dir string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "dropper.log"))
	if err != nil {
		t.Error(err)
		return
	}
	defer logf.Close()
	cmd := exec.Command(bin, "dev", "--database-url", dbURL, "--metadata-db", meta, "--data", dir, "--ephemeral",
		"--http", "127.0.0.1:0", "--pg", "")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Errorf("start the clean-up bitd dev: %v", err)
		return
	}
	// Waited for whatever comes: the logs checked below say what went
	// wrong. Not t.Context(): this runs in a Cleanup, after it ended.
	_ = testwait.Wait(context.Background(), 90*time.Second, func() error {
		if b, err := os.ReadFile(filepath.Join(dir, "demo.env")); err != nil || len(b) == 0 || b[len(b)-1] != '\n' {
			return errors.New("the clean-up bitd dev has not written demo.env")
		}
		return nil
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("the clean-up bitd dev did not stop; metadata database %s may be left behind", meta)
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "dropper.log"))
	if !strings.Contains(string(logs), "ephemeral clean-up done") {
		t.Errorf("dropping what bitd serve created (metadata database %s) did not finish:\n%s", meta, logs)
	}
}

// TestSSRFFileURL: in production mode (bitd serve) an import's file_url
// pointing at loopback, link-local, private or cloud-metadata addresses, or
// at a name resolving to one, fails with url_refused. The check runs on the
// dialed address before connecting, so nothing is ever sent there: a loopback
// server of the test counts that it is never reached.
func TestSSRFFileURL(t *testing.T) {
	t.Parallel() // mostly waiting: overlaps with the other waiting tests
	endpoint, key := serveMode(t)
	c := newClient(endpoint, key)
	db := c.createDB(t, "ssrf", true)

	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "id\n1\n")
	}))
	defer ts.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ts.URL, "http://"))
	targets := []string{
		ts.URL + "/x.csv", "http://localhost:" + port + "/x.csv", "http://[::1]:" + port + "/x.csv",
		"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.csv", "http://[::ffff:127.0.0.1]:" + port + "/x.csv",
		"http://0.0.0.0:" + port + "/x.csv",
	}
	for _, u := range targets {
		t.Run(u, func(t *testing.T) {
			id := c.startImport(t, db, "ssrf", nil, u)
			r := c.waitJob(t, "import", id, 2*time.Minute)
			if r.str("state") != "FAILED" || r.str("error_type") != "url_refused" {
				t.Fatalf("file_url %s: %s, want FAILED with url_refused", u, r.Raw)
			}
			record(t, "bitd serve: import file_url "+u, "job ends FAILED with url_refused; the address is never connected to")
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server was reached %d times", n)
	}
	if q := c.query(t, db, "select count(*) from ssrf"); q.Status == 200 {
		t.Fatalf("a refused import left a table: %s", q.Raw)
	}
}

// TestDownloadURLExpires: a genuine download URL stops working once its
// lifetime (--download-url-ttl) has passed.
func TestDownloadURLExpires(t *testing.T) {
	t.Parallel() // mostly waiting
	s := startScanned(t, bitdtest.Args("--download-url-ttl", "2s"))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "dlttl", true)
	c.mustQuery(t, db, "create table t as select g as id from generate_series(1, 5) g")
	expID, _ := exportDone(t, c, db, map[string]any{"table_name": "t", "schema_name": "public"})
	anon := newClient("", "")
	// The URL is minted when the job is read; read it again so the check of
	// the fresh URL does not race its 2 s lifetime.
	dl := c.waitJob(t, "export", expID, time.Minute).str("download_url")
	if r, err := anon.doE("GET", dl, nil); err != nil || r.Status != 200 {
		t.Fatalf("fresh download_url: %v %d %.200s", err, r.Status, r.Raw)
	}
	time.Sleep(3 * time.Second)
	r, err := anon.doE("GET", dl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusGone || r.str("code") != "download_expired" {
		t.Fatalf("expired download_url: %d %.300s, want 410 download_expired", r.Status, r.Raw)
	}
	record(t, "download URL used after its lifetime (--download-url-ttl 2s)", fmt.Sprintf("refused (%d %s)", r.Status, r.str("code")))
}
