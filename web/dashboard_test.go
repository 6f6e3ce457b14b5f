//go:build !js

// Package web holds the dashboard's sources (app.js, editor.js, index.html,
// style.css, bundled by build.mjs) and its end-to-end test: a real bitd, the
// bundled dashboard on a second static origin, and headless Chromium driven
// through the visible UI by web/test/dashboard.mjs (playwright-core).
// Screenshots land in test-artifacts/web/.
package web

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// bundle builds what `make web` ships into a temporary directory: the wasm
// client, wasm_exec.js, bitkit.mjs and the esbuild bundle of the dashboard.
func bundle(t testing.TB, root string) string {
	t.Helper()
	dir := t.TempDir()
	run := func(name string, env []string, args ...string) {
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "esbuild")); err != nil {
		t.Fatal("esbuild is not installed in web/: run scripts/deps.sh (npm ci in web)")
	}
	run(bitdtest.Node(t), nil, "web/build.mjs", dir)
	// BITKIT_WASM_DIR names a prebuilt client (bitkit.wasm, bitkit.mjs,
	// wasm_exec.js) to test the dashboard with; by default ./wasm is built.
	files := map[string]string{}
	if pre := os.Getenv("BITKIT_WASM_DIR"); pre != "" {
		for _, f := range []string{"bitkit.wasm", "bitkit.mjs", "wasm_exec.js"} {
			files[filepath.Join(pre, f)] = f
		}
	} else {
		run("go", []string{"GOOS=js", "GOARCH=wasm"}, "build", "-trimpath", "-gcflags=github.com/bitkit-dev/bitkit/...=-l", "-ldflags=-s -w", "-o", filepath.Join(dir, "bitkit.wasm"), "./wasm") // mk/web.mk's WASM_BUILD_FLAGS
		goroot, err := exec.CommandContext(t.Context(), "go", "env", "GOROOT").Output()
		if err != nil {
			t.Fatalf("go env GOROOT: %v", err)
		}
		files[filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js")] = "wasm_exec.js"
		files[filepath.Join(root, "wasm", "bitkit.mjs")] = "bitkit.mjs"
	}
	for from, to := range files {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDashboard drives the dashboard as a person would, at 1400×900, at
// 390×844 and in dark mode (web/test/dashboard.mjs).
func TestDashboard(t *testing.T) {
	root := bitdtest.RepoRoot()
	bitdtest.Chromium(t)
	origin := bitdtest.ServeDir(t, bundle(t, root))
	s := bitdtest.Start(t, bitdtest.Args("--allowed-origins", origin))
	env := []string{"BITKIT_ENDPOINT=" + s.Endpoint, "SITE_URL=" + origin}
	var secrets []string
	// One user per pass: each pass ends by revoking all of its keys.
	for _, pass := range []string{"desktop", "phone", "dark"} {
		user := "dash" + pass
		pw := "pw-" + bitdtest.UniqueName(pass)
		key := s.NewUser(t, user, pw)
		secrets = append(secrets, key, pw)
		env = append(env, "USER_"+pass+"="+user, "KEY_"+pass+"="+key, "PASSWORD_"+pass+"="+pw)
	}
	t.Cleanup(func() {
		logs := s.Logs()
		for _, secret := range secrets {
			if strings.Contains(logs, secret) {
				t.Errorf("bitd logged a credential the dashboard sent (%d characters)", len(secret))
			}
		}
	})
	out, err := bitdtest.RunWebScript(t, "dashboard.mjs", "dashboard.log", 10*time.Minute, env...)
	t.Logf("dashboard.mjs output:\n%s", out)
	if err != nil {
		t.Fatalf("dashboard tests failed (%v); bitd log:\n%s", err, s.Logs())
	}
	if !strings.Contains(string(out), "ALL PASSED") {
		t.Fatal("dashboard.mjs exited 0 without reporting ALL PASSED")
	}
}

// BenchmarkDashboard measures the dashboard in headless Chromium against a
// real bitd (web/test/dashboard-bench.mjs): navigation → ready, the first row
// and all of a 200,000-row result next to a plain fetch() of the same query,
// frame times while scrolling it, and the bytes a first visit transfers
// (gzip -9 of every file the page loads, as bitd sends them). `make bench-web`.
func BenchmarkDashboard(b *testing.B) {
	root := bitdtest.RepoRoot()
	dir := bundle(b, root)
	origin := bitdtest.ServeDir(b, dir)
	s := bitdtest.Start(b, bitdtest.Args("--allowed-origins", origin))
	db := "benchdash"
	r, err := http.NewRequestWithContext(b.Context(), "POST", s.Endpoint+"/v2beta/db/", strings.NewReader(`{"name":"`+db+`"}`))
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+s.APIKey)
	r.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(r)
	if err != nil || res.StatusCode != http.StatusCreated {
		b.Fatalf("creating the bench database: %v %v", err, res)
	}
	res.Body.Close()
	var total int
	for _, f := range []string{"index.html", "style.css", "app.js", "bitkit.mjs", "wasm_exec.js", "bitkit.wasm"} {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		b.Logf("%-12s %9d bytes, %8d gzip -9", f, len(raw), buf.Len())
		b.ReportMetric(float64(buf.Len()), strings.ReplaceAll(f, ".", "-")+"-gz-bytes")
		total += buf.Len()
	}
	b.ReportMetric(float64(total), "transfer-gz-bytes")
	for b.Loop() {
		out, err := bitdtest.RunWebScript(b, "dashboard-bench.mjs", "dashboard-bench.log", 10*time.Minute, "BITKIT_ENDPOINT="+s.Endpoint, "BITKIT_API_KEY="+s.APIKey,
			"BITKIT_DB="+s.User+"/"+db, "SITE_URL="+origin)
		if err != nil {
			b.Fatalf("dashboard-bench.mjs: %v\n%s", err, out)
		}
		var m map[string]float64
		if err := jsonx.Unmarshal(bytes.TrimSpace(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:]), &m); err != nil {
			b.Fatalf("dashboard-bench.mjs printed %q: %v", out, err)
		}
		for _, k := range []string{"readyMs", "firstRowMs", "allRowsMs", "fetchFirstRowMs", "fetchAllRowsMs", "scrollP50Ms", "scrollP95Ms", "idleP50Ms"} {
			b.ReportMetric(m[k], k)
		}
		b.Logf("navigation → ready %v ms; 200k rows: first row %v ms (fetch %v), all %v ms (fetch %v); scroll frames p50 %v / p95 %v ms (idle %v); first visit %d bytes gzip",
			m["readyMs"], m["firstRowMs"], m["fetchFirstRowMs"], m["allRowsMs"], m["fetchAllRowsMs"], m["scrollP50Ms"], m["scrollP95Ms"], m["idleP50Ms"], total)
	}
	b.ReportMetric(0, "ns/op")
}
