//go:build !js

// The end-to-end test of the browser client: it builds bitkit.wasm, serves
// the test pages from a local static server (a second origin, so every API
// call is a CORS request), starts a real bitd with that origin in
// --allowed-origins, and runs web/test/run.mjs, which drives headless
// Chromium (apt chromium, npm playwright-core) through the JS API (the
// dashboard has its own suite, web/dashboard_test.go). Screenshots land in
// test-artifacts/web/.
package main

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// site assembles the static files of the dashboard and the test pages in a
// temporary directory: the same layout `make web` produces, plus test/.
func site(t testing.TB, root string) string {
	t.Helper()
	dir := t.TempDir()
	buildWasm(t, root, dir)
	for _, f := range []string{"wasm/bitkit.mjs", "wasm/bitkit.d.ts", "web/index.html", "web/app.js", "web/style.css"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(dir, filepath.Base(f)))
	}
	if err := os.MkdirAll(filepath.Join(dir, "test"), 0o755); err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob(filepath.Join(root, "web", "test", "pages", "*"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no test pages in web/test/pages: %v", err)
	}
	for _, p := range pages {
		copyFile(t, p, filepath.Join(dir, "test", filepath.Base(p)))
	}
	return dir
}

// buildWasm builds bitkit.wasm into dir and copies Go's wasm_exec.js beside it.
func buildWasm(t testing.TB, root, dir string) {
	t.Helper()
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-gcflags=github.com/bitkit-dev/bitkit/...=-l", "-ldflags=-s -w", "-o", filepath.Join(dir, "bitkit.wasm"), "./wasm") // mk/web.mk's WASM_BUILD_FLAGS
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building bitkit.wasm: %v\n%s", err, out)
	}
	goroot, err := exec.CommandContext(t.Context(), "go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	copyFile(t, filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"), filepath.Join(dir, "wasm_exec.js"))
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("reading %s: %v", from, err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTypeScriptExample(t *testing.T) {
	t.Parallel()
	root := bitdtest.RepoRoot()
	tsc := filepath.Join(root, "web", "test", "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatal("typescript is not installed in web/test: run scripts/deps.sh (npm ci in web/test)")
	}
	cmd := exec.CommandContext(t.Context(), bitdtest.Node(t), tsc, "--noEmit", "-p", "ts-example")
	cmd.Dir = filepath.Join(root, "web", "test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc --noEmit over web/test/ts-example failed: %v\n%s", err, out)
	}
}

func TestBrowser(t *testing.T) {
	root := bitdtest.RepoRoot()
	bitdtest.Chromium(t)
	dir := site(t, root)
	allowed := bitdtest.ServeDir(t, dir)
	denied := bitdtest.ServeDir(t, dir) // same files, an origin bitd does not allow
	s := bitdtest.Start(t, bitdtest.Args("--allowed-origins", allowed))
	const pwUser, pwPassword = "webpw", "correct horse battery staple"
	pwKey := s.NewUser(t, pwUser, pwPassword)
	// run.mjs fails each check that hangs; the limit bounds the whole run.
	out, err := bitdtest.RunWebScript(t, "run.mjs", "run.log", 12*time.Minute,
		"BITKIT_ENDPOINT="+s.Endpoint,
		"BITKIT_API_KEY="+s.APIKey,
		"BITKIT_USER="+s.User,
		"BITKIT_PW_USER="+pwUser,
		"BITKIT_PW_PASSWORD="+pwPassword,
		"BITKIT_PW_KEY="+pwKey,
		"SITE_URL="+allowed,
		"DENIED_SITE_URL="+denied,
	)
	t.Logf("run.mjs output:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed (%v); bitd log:\n%s", err, s.Logs())
	}
	if !strings.Contains(string(out), "ALL PASSED") {
		t.Fatal("run.mjs exited 0 without reporting ALL PASSED")
	}
}

// BenchmarkBrowserLoad measures, in headless Chromium against a real bitd,
// the time from navigation start to the bitkit API being ready and to the
// first query result (1000 rows), next to a plain fetch() of the same query
// as the reference (web/test/bench.mjs). It also reports the wasm size.
// Run it with `make bench-web`; one iteration covers RUNS page loads.
func BenchmarkBrowserLoad(b *testing.B) {
	root := bitdtest.RepoRoot()
	dir := site(b, root)
	origin := bitdtest.ServeDir(b, dir)
	s := bitdtest.Start(b, bitdtest.Args("--allowed-origins", origin))
	db := "bench" + strings.ReplaceAll(bitdtest.UniqueName(""), "-", "")
	create := exec.CommandContext(b.Context(), bitdtest.Node(b), "-e", `fetch(process.env.E + "/v2beta/db/", {method: "POST", headers: {Authorization: "Bearer " + process.env.K, "Content-Type": "application/json"}, body: JSON.stringify({name: process.env.D})}).then(r => { if (!r.ok) process.exit(1) })`)
	create.Env = append(os.Environ(), "E="+s.Endpoint, "K="+s.APIKey, "D="+db)
	if out, err := create.CombinedOutput(); err != nil {
		b.Fatalf("creating the bench database: %v %s", err, out)
	}
	wasm, err := os.Stat(filepath.Join(dir, "bitkit.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd := exec.CommandContext(b.Context(), bitdtest.Node(b), filepath.Join(root, "web", "test", "bench.mjs"))
		cmd.Dir = filepath.Join(root, "web", "test")
		cmd.Env = append(os.Environ(), "BITKIT_ENDPOINT="+s.Endpoint, "BITKIT_API_KEY="+s.APIKey,
			"BITKIT_DB="+s.User+"/"+db, "SITE_URL="+origin)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("bench.mjs: %v\n%s", err, out)
		}
		var r map[string]struct {
			ReadyMs, QueryMs, ReadyMinMs, ReadyMaxMs  float64
			StreamFirstMs, StreamLastMs, StreamFrames float64
		}
		if err := jsonx.Unmarshal(out, &r); err != nil {
			b.Fatalf("bench.mjs printed %q: %v", out, err)
		}
		b.ReportMetric(r["wasm"].ReadyMs, "wasm-ready-ms")
		b.ReportMetric(r["wasm"].QueryMs, "wasm-query-ms")
		b.ReportMetric(r["fetch"].QueryMs, "fetch-query-ms")
		b.Logf("navigation → ready / first result (medians): wasm %v / %v ms (ready %v–%v ms); plain fetch – / %v ms; bitkit.wasm %d bytes raw",
			r["wasm"].ReadyMs, r["wasm"].QueryMs, r["wasm"].ReadyMinMs, r["wasm"].ReadyMaxMs, r["fetch"].QueryMs, wasm.Size())
		b.ReportMetric(r["wasm"].StreamLastMs, "wasm-stream-last-ms")
		b.ReportMetric(r["fetch"].StreamLastMs, "fetch-stream-last-ms")
		b.Logf("200k-row stream, first / last row, frames drawn (medians): wasm %v / %v ms, %v frames; plain fetch + JSON.parse %v / %v ms, %v frames",
			r["wasm"].StreamFirstMs, r["wasm"].StreamLastMs, r["wasm"].StreamFrames, r["fetch"].StreamFirstMs, r["fetch"].StreamLastMs, r["fetch"].StreamFrames)
	}
	b.ReportMetric(float64(wasm.Size()), "wasm-bytes")
	b.ReportMetric(0, "ns/op")
}

// TestPackage installs the client the way a developer does: `npm pack` of
// the package (wasm/package.json: ESM, exports with types as .d.mts, the
// wasm files as assets) into a fresh TypeScript project by its tarball, with
// no import map or `paths`; `tsc --strict` type-checks wasm/testdata/pkgapp,
// esbuild bundles it, and headless Chromium runs it against a real bitd:
// default values (JSON-ready), int8 "bigint", a stream, a SQL error as a
// BitkitError, the one-statement rule.
func TestPackage(t *testing.T) {
	t.Parallel()
	root := bitdtest.RepoRoot()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed: the package test needs Node 20+ with npm (scripts/deps.sh)")
	}
	tsc := filepath.Join(root, "web", "test", "node_modules", "typescript", "bin", "tsc")
	esbuild := filepath.Join(root, "web", "node_modules", ".bin", "esbuild")
	for _, p := range []string{tsc, esbuild, filepath.Join(root, "web", "test", "node_modules", "playwright-core")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run scripts/deps.sh (npm ci in web/ and web/test/)", p)
		}
	}
	run := func(dir string, name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
	}

	// The package directory, as `make wasm` lays it out.
	pkg := filepath.Join(t.TempDir(), "dist")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	buildWasm(t, root, pkg)
	copyFile(t, filepath.Join(root, "wasm", "bitkit.mjs"), filepath.Join(pkg, "bitkit.mjs"))
	copyFile(t, filepath.Join(root, "wasm", "bitkit.d.ts"), filepath.Join(pkg, "bitkit.d.mts"))
	copyFile(t, filepath.Join(root, "wasm", "package.json"), filepath.Join(pkg, "package.json"))
	run(pkg, bitdtest.Node(t), filepath.Join(root, "scripts", "precompress.mjs"), "bitkit.wasm")
	tarballs := t.TempDir()
	run(pkg, npm, "pack", "--silent", "--pack-destination", tarballs)
	tgz, _ := filepath.Glob(filepath.Join(tarballs, "bitkit-dev-client-*.tgz"))
	if len(tgz) != 1 {
		t.Fatalf("npm pack made %v", tgz)
	}

	// A fresh project that installs the tarball.
	app := t.TempDir()
	for _, f := range []string{"app.ts", "tsconfig.json"} {
		copyFile(t, filepath.Join(root, "wasm", "testdata", "pkgapp", f), filepath.Join(app, f))
	}
	if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name": "pkgapp", "private": true, "type": "module"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(app, npm, "install", "--offline", "--no-audit", "--no-fund", "--no-package-lock", tgz[0])
	for _, f := range []string{"bitkit.d.mts", "bitkit.wasm", "bitkit.wasm.gz", "bitkit.wasm.br", "wasm_exec.js"} {
		if _, err := os.Stat(filepath.Join(app, "node_modules", "@bitkit-dev", "client", f)); err != nil {
			t.Fatalf("the installed package lacks %s: %v", f, err)
		}
	}
	run(app, bitdtest.Node(t), tsc, "-p", ".")
	out := filepath.Join(app, "out")
	run(app, esbuild, "app.ts", "--bundle", "--format=esm", "--target=es2022", "--outfile="+filepath.Join(out, "app.js"))
	for _, f := range []string{"bitkit.mjs", "bitkit.wasm", "wasm_exec.js"} { // the Worker's entry and assets beside the bundle
		copyFile(t, filepath.Join(app, "node_modules", "@bitkit-dev", "client", f), filepath.Join(out, f))
	}
	copyFile(t, filepath.Join(root, "wasm", "testdata", "pkgapp", "index.html"), filepath.Join(out, "index.html"))

	origin := bitdtest.ServeDir(t, out)
	s := bitdtest.Start(t, bitdtest.Args("--allowed-origins", origin))
	db := "pkg" + strings.ReplaceAll(bitdtest.UniqueName(""), "-", "")
	q := url.Values{"endpoint": {s.Endpoint}, "key": {s.APIKey}, "user": {s.User}, "db": {db}}
	cmd := exec.CommandContext(t.Context(), bitdtest.Node(t), filepath.Join(root, "wasm", "testdata", "pkgapp", "run.mjs"))
	cmd.Dir = filepath.Join(root, "web", "test")
	cmd.Env = append(os.Environ(), "APP_URL="+origin+"/index.html?"+q.Encode())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("run.mjs: %v\n%s%s\nbitd log:\n%s", err, b, stderr.Bytes(), s.Logs())
	}
	var got struct {
		Outcome struct {
			Fatal, JSON, Multi, Bigint string
			Streamed, RowCount         int
			SQLError                   *struct {
				Code, Sqlstate string
				IsError        bool
			}
		}
		Errors []string
	}
	if err := jsonx.Unmarshal(b, &got); err != nil {
		t.Fatalf("run.mjs printed %s: %v", b, err)
	}
	o := got.Outcome
	if o.Fatal != "" || len(got.Errors) > 0 {
		t.Fatalf("the app failed: %q, page errors %q", o.Fatal, got.Errors)
	}
	if o.JSON != `[[1,"9007199254740993",2.5,[1,2]]]` {
		t.Errorf("default values = %s", o.JSON)
	}
	if o.Bigint != "9223372036854775807" || o.Streamed != 500500 || o.RowCount != 1000 || o.Multi != "invalid_argument" {
		t.Errorf("outcome %+v", o)
	}
	if o.SQLError == nil || o.SQLError.Code != "sql_error" || o.SQLError.Sqlstate != "42P01" || !o.SQLError.IsError {
		t.Errorf("SQL error %+v", o.SQLError)
	}
}
