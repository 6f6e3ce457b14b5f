// Package bitdtest starts real bitd processes for end-to-end tests in every
// bitkit module (core, the CLI, pgdirect, lambda, workers, wasm).
//
// It builds bin/bitd from ../server once per test process and runs
//
//	BITD_DATABASE_URL=$TEST_DATABASE_URL bitd dev --metadata-db <unique> \
//	         --http 127.0.0.1:0 --pg 127.0.0.1:0 --data <tempdir> --ephemeral
//
// then waits for <tempdir>/demo.env, which bitd writes once it is ready. The
// metadata database name is unique per server, so tests in many packages can
// share one PostgreSQL cluster; --ephemeral makes bitd drop what it created
// (platform databases, their roles, the metadata database) when it stops.
//
// TEST_DATABASE_URL must name a superuser connection (scripts/pg-up.sh prints
// one). A missing TEST_DATABASE_URL fails the test: it is never a skip.
//
// BITDTEST_BITD, when set, is the path of a bitd binary to run instead of
// building one (for example a release build under test).
//
// Binaries are built into one directory per user and checkout,
// $TMPDIR/bitkit-bin-<uid>-<checkout hash>, reused by every test process
// (each build replaces the binary atomically), so test runs do not leave a
// new directory behind each time.
//
// Stop and the clean-up of Start send SIGTERM and wait up to 45 s before
// killing bitd; a kill skips the --ephemeral clean-up.
package bitdtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running bitd dev instance.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	APIKey   string // the demo user's API key
	User     string // the demo user's name (also its personal account)
	PGAddr   string // host:port of the PostgreSQL wire proxy, when bitd serves one
	DataDir  string // --data directory
	Env      map[string]string
	LogPath  string // bitd's combined stdout/stderr
	// MetadataDB is the metadata database name (--metadata-db).
	MetadataDB string
	// CACert is the PEM file of the dev CA that signed bitd's certificate
	// (BITKIT_CA_CERT of demo.env), under TLS(); "" otherwise.
	CACert string

	cmd  *exec.Cmd
	done chan struct{}
	args []string
	env  []string // added to os.Environ()
}

type config struct {
	args       []string
	env        []string
	metadataDB string
}

// Option changes how Start runs bitd.
type Option func(*config)

// Args appends extra command-line flags to `bitd dev` (e.g. "--token-ttl", "2s").
func Args(a ...string) Option { return func(c *config) { c.args = append(c.args, a...) } }

// TLS starts `bitd dev --tls`: HTTPS (Endpoint is https://) and wire TLS
// with a certificate from the dev CA in Server.CACert.
func TLS() Option { return Args("--tls") }

// Env adds KEY=VALUE entries to bitd's environment.
func Env(kv ...string) Option { return func(c *config) { c.env = append(c.env, kv...) } }

// SharedSecret gives bitd a fresh random BITD_SECRET, so that Replica can
// start more replicas of it.
func SharedSecret() Option {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return Env("BITD_SECRET=" + hex.EncodeToString(b[:]))
}

// Replica makes Start run another replica of primary: the same metadata
// database and environment (primary must have been started with
// SharedSecret), its own data directory and ports, and no --ephemeral
// clean-up (primary drops the metadata database). Stop replicas before
// primary (t.Cleanup does, when they were started after it).
func Replica(primary *Server) Option {
	return func(c *config) {
		c.env = append(c.env, primary.env...)
		c.metadataDB = primary.MetadataDB
		c.args = append(c.args, "--ephemeral=false")
	}
}

// RepoRoot is the root of the bitkit checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DatabaseURL returns TEST_DATABASE_URL or fails the test.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		t.Fatal("TEST_DATABASE_URL is not set: run `make test`, or export TEST_DATABASE_URL=$(scripts/pg-up.sh)")
	}
	return u
}

var (
	buildMu  sync.Mutex
	builtBin = map[string]string{}
)

// Build compiles the main package at pkgDir (relative to the repo root, e.g.
// "server/cmd/bitd" or "cmd/bit") once per test process and returns the
// binary's path.
func Build(t testing.TB, pkgDir string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtBin[pkgDir]; ok {
		return p
	}
	if p := os.Getenv("BITDTEST_BITD"); p != "" && pkgDir == "server/cmd/bitd" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("BITDTEST_BITD names no usable bitd binary: %v", err)
		}
		builtBin[pkgDir] = p
		return p
	}
	sum := sha256.Sum256([]byte(RepoRoot()))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("bitkit-bin-%d-%x", os.Getuid(), sum[:6]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkgDir))
	// Build under a private name, then rename: other test processes may be
	// running the previous binary or building the same one right now.
	tmp, err := os.CreateTemp(dir, filepath.Base(pkgDir)+"-*")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-o", tmp.Name(), ".")
	cmd.Dir = filepath.Join(RepoRoot(), pkgDir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkgDir, err, b)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		t.Fatal(err)
	}
	builtBin[pkgDir] = out
	return out
}

// Bitd returns the path of a freshly built bitd binary.
func Bitd(t testing.TB) string { return Build(t, "server/cmd/bitd") }

// Bit returns the path of a freshly built bit CLI binary.
func Bit(t testing.TB) string { return Build(t, "cmd/bit") }

// UniqueName returns prefix plus 10 random lowercase hex characters.
func UniqueName(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Start runs a bitd dev instance for the test and stops it (SIGTERM, then
// SIGKILL after 45 s) in t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	bin := Bitd(t)
	data := t.TempDir()
	if c.metadataDB == "" {
		c.metadataDB = UniqueName("bitkit_t_")
	}
	s := &Server{DataDir: data, LogPath: filepath.Join(data, "bitd.log"), MetadataDB: c.metadataDB}
	// The admin URL goes through the environment, not argv, where ps
	// would show its password.
	env := append([]string{"BITD_DATABASE_URL=" + DatabaseURL(t)}, c.env...)
	s.args = append([]string{"dev",
		"--metadata-db", c.metadataDB,
		"--http", "127.0.0.1:0",
		"--pg", "127.0.0.1:0",
		"--data", data,
		"--ephemeral",
	}, c.args...)
	s.env = env
	s.start(t, bin)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

func (s *Server) start(t testing.TB, bin string) {
	t.Helper()
	envFile := filepath.Join(s.DataDir, "demo.env")
	_ = os.Remove(envFile)
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, s.args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bitd: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		if b, err := os.ReadFile(envFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			s.Env = parseEnv(b)
			s.Endpoint = s.Env["BITKIT_ENDPOINT"]
			s.APIKey = s.Env["BITKIT_API_KEY"]
			s.User = s.Env["BITKIT_DEMO_USER"]
			s.PGAddr = s.Env["BITKIT_PG_ADDR"]
			s.CACert = s.Env["BITKIT_CA_CERT"]
			if s.Endpoint != "" && s.APIKey != "" {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("bitd exited before it was ready:\n%s", s.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("bitd not ready after 90s:\n%s", s.Logs())
		}
	}
}

// Restart stops bitd with sig (syscall.SIGTERM for a clean stop,
// syscall.SIGKILL for a crash) and starts it again on the same data directory
// and metadata database. The HTTP port may change; Endpoint is updated.
func (s *Server) Restart(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.signalAndWait(t, sig)
	s.start(t, Bitd(t))
}

// Stop ends bitd (SIGTERM, then SIGKILL after 45 s). Safe to call twice.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.signalAndWait(t, syscall.SIGTERM)
}

func (s *Server) signalAndWait(t testing.TB, sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	// bitd may take its drain timeout (5s under dev) plus up to a minute
	// for the --ephemeral clean-up on a busy cluster.
	case <-time.After(90 * time.Second):
		t.Errorf("bitd did not stop within 90s of %v; killing it", sig)
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// Exited is closed once bitd has exited (for tests that signal it
// themselves, through Pid).
func (s *Server) Exited() <-chan struct{} { return s.done }

// Pid is bitd's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Logs returns what bitd has printed so far.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Admin runs `bitd admin --data DIR args...` and returns its stdout. It fails
// the test when the command fails.
func (s *Server) Admin(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.AdminE(t.Context(), args...)
	if err != nil {
		t.Fatalf("bitd admin %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// AdminE is Admin returning the error (with stderr) instead of failing.
func (s *Server) AdminE(ctx context.Context, args ...string) (string, error) {
	bin := builtBin["server/cmd/bitd"]
	cmd := exec.CommandContext(ctx, bin, append([]string{"admin", "--data", s.DataDir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// NewUser creates a user (with its personal account) and returns a fresh API
// key for it. The password is optional ("" for none).
func (s *Server) NewUser(t testing.TB, name, password string) string {
	t.Helper()
	args := []string{"user", "create", name}
	if password != "" {
		args = append(args, "--password", password)
	}
	s.Admin(t, args...)
	return strings.TrimSpace(s.Admin(t, "key", "create", name))
}

func parseEnv(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}
