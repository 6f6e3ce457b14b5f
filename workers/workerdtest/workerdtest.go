//go:build !js

// Package workerdtest runs the real bitkit Worker bundle in workerd (the
// open-source Workers runtime, npm package "workerd" pinned in
// workers/package.json) for tests and benchmarks.
//
// Build compiles the bundle with workers/build.sh once per test process;
// Start renders workers/workerd.capnp.tmpl with the given bindings, starts
// `workerd serve` in its own process group on a listener opened here on
// 127.0.0.1 (handed over with --socket-fd, so there is no port race) and
// kills the whole group in t.Cleanup.
package workerdtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Dir is the workers/ directory of the checkout.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// Binding is a Worker text binding (a var or a secret), or, with KV set, a
// KV namespace binding whose store is the HTTP server at KV ("127.0.0.1:port",
// speaking workerd's KV protocol: GET, PUT and DELETE of /<url-encoded key>).
type Binding struct {
	Name, Value string
	KV          string
}

type build struct {
	once sync.Once
	dir  string
	err  error
	log  []byte
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// Build builds bitkit's Worker bundle once per test process with build.sh
// and returns the directory holding worker.mjs, runtime.mjs, wasm_exec.js
// and app.wasm.
func Build(t testing.TB) string { t.Helper(); return BuildPackage(t, ".") }

// BuildPackage builds the bundle of the Worker main package pkg (a path
// relative to workers/, such as "./examples/customroute") once per test
// process.
func BuildPackage(t testing.TB, pkg string) string {
	t.Helper()
	buildsMu.Lock()
	b := builds[pkg]
	if b == nil {
		b = &build{}
		builds[pkg] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "bitkit-worker-")
		if err != nil {
			b.err = err
			return
		}
		b.dir = filepath.Join(dir, "build")
		cmd := exec.Command(filepath.Join(Dir(), "build.sh"), b.dir, pkg)
		b.log, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("workers/build.sh %s: %v\n%s", pkg, b.err, b.log)
	}
	return b.dir
}

// Binary is the path of the workerd binary installed by npm in workers/.
func Binary(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Dir(), "node_modules", ".bin", "workerd")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("workerd is not installed (%v): run scripts/deps.sh, or `npm ci` in workers/", err)
	}
	return p
}

// Worker is a running workerd serving the bundle.
type Worker struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// Started is when the workerd process was spawned; Ready is when it
	// first answered GET /healthz (polled every 5 ms).
	Started, Ready time.Time

	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   *sync.Mutex
}

// Logs returns what workerd printed so far.
func (w *Worker) Logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// capnpString quotes s as a Cap'n Proto text literal.
func capnpString(s string) (string, error) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			return "", fmt.Errorf("binding value contains control character %U", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// Start builds bitkit's bundle (once) and serves it in workerd with
// bindings, waiting until workerd answers GET /healthz. The process group is
// killed in t.Cleanup.
func Start(t testing.TB, bindings ...Binding) *Worker {
	t.Helper()
	return StartBundle(t, Build(t), bindings...)
}

// StartBundle serves the bundle in directory bundle (from BuildPackage) in
// workerd, as Start does; the Worker must answer GET /healthz with 200.
func StartBundle(t testing.TB, bundle string, bindings ...Binding) *Worker {
	t.Helper()
	bin := Binary(t)
	tmpl, err := template.New("workerd.capnp.tmpl").Funcs(template.FuncMap{"quote": capnpString}).
		ParseFiles(filepath.Join(Dir(), "workerd.capnp.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// workerd resolves embeds relative to the config and refuses absolute
	// paths: link the bundle next to the config.
	if err := os.Symlink(bundle, filepath.Join(dir, "bundle")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var cfg bytes.Buffer
	if err := tmpl.Execute(&cfg, map[string]any{"Addr": addr, "BuildDir": "bundle", "Bindings": bindings}); err != nil {
		ln.Close()
		t.Fatalf("rendering workerd.capnp.tmpl: %v", err)
	}
	cfgPath := filepath.Join(dir, "config.capnp")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o600); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{URL: "http://" + addr, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	w.cmd = exec.Command(bin, "serve", cfgPath, "--socket-fd", "http=3")
	w.cmd.Dir = dir
	w.cmd.ExtraFiles = []*os.File{f}
	w.cmd.Stdout = lockedWriter{w.mu, w.logs}
	w.cmd.Stderr = lockedWriter{w.mu, w.logs}
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w.Started = time.Now()
	if err := w.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting workerd: %v", err)
	}
	f.Close()
	exited := make(chan struct{})
	go func() { w.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.URL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				w.Ready = time.Now()
				return w
			}
		}
		select {
		case <-exited:
			t.Fatalf("workerd exited before serving: %s", w.Logs())
		case <-ctx.Done():
			t.Fatalf("workerd did not answer /healthz within 30s (last error %v): %s", err, w.Logs())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// NewToken returns a random caller token for BITKIT_WORKER_TOKEN.
func NewToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wt-" + hex.EncodeToString(b)
}

// SizeLimit is Cloudflare's limit for a Worker on the free plan: 3 MiB
// after gzip compression.
const SizeLimit = 3 << 20

// BundleSize returns the size of dir/app.wasm raw and gzipped (level 9, the
// way wrangler reports it, give or take the small JS files).
func BundleSize(dir string) (raw, gz int64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "app.wasm"))
	if err != nil {
		return 0, 0, err
	}
	var buf countWriter
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return 0, 0, err
	}
	if _, err := zw.Write(b); err != nil {
		return 0, 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, 0, err
	}
	return int64(len(b)), int64(buf), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// Post sends body to url as JSON, with "Authorization: Bearer <token>"
// unless token is "", and returns the status and the answer.
func Post(ctx context.Context, url, token, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
