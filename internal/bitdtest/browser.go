package bitdtest

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Node returns the path of node (Node 20+, installed by scripts/deps.sh); a
// missing one fails the test.
func Node(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: the browser tests need Node 20+ (scripts/deps.sh)")
	}
	return p
}

// Chromium returns the headless Chromium the browser tests drive ($CHROMIUM,
// default /usr/bin/chromium) after checking that playwright-core is
// installed in web/test; anything missing fails the test with the fix.
func Chromium(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(RepoRoot(), "web", "test", "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is not installed in web/test: run scripts/deps.sh (npm ci in web/test)")
	}
	c := os.Getenv("CHROMIUM")
	if c == "" {
		c = "/usr/bin/chromium"
	}
	if _, err := os.Stat(c); err != nil {
		t.Fatalf("headless Chromium not found at %s: install the Debian package chromium (scripts/deps.sh) or set CHROMIUM", c)
	}
	return c
}

// RunWebScript runs the Node script web/test/<script> with env (plus
// ARTIFACTS, the directory test-artifacts/web, and CHROMIUM) for at most
// limit, and returns its combined output, which also goes, live, to
// test-artifacts/web/<log>. The limit bounds a hung browser so that the
// output is still reported before go test's own -timeout.
func RunWebScript(t testing.TB, script, log string, limit time.Duration, env ...string) ([]byte, error) {
	t.Helper()
	root := RepoRoot()
	artifacts := filepath.Join(root, "test-artifacts", "web")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, Node(t), filepath.Join(root, "web", "test", script))
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = filepath.Join(root, "web", "test")
	cmd.Env = append(os.Environ(), append(env, "ARTIFACTS="+artifacts, "CHROMIUM="+Chromium(t))...)
	live, err := os.Create(filepath.Join(artifacts, log))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, live)
	cmd.Stderr = cmd.Stdout
	err = cmd.Run()
	return buf.Bytes(), err
}
