//go:build !js

package main

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// TestBrowserTransactions runs wasm/testdata/txapp (client.transaction, the
// Kysely dialect and the Drizzle adapter, each a read-modify-write transfer
// and a rolled-back one) in headless Chromium against a real bitd, with the
// Go instance in its Web Worker and on the page's main thread. esbuild
// bundles the app with kysely and drizzle-orm from web/test/node_modules.
func TestBrowserTransactions(t *testing.T) {
	t.Parallel()
	root := bitdtest.RepoRoot()
	bitdtest.Chromium(t)
	esbuild := filepath.Join(root, "web", "node_modules", ".bin", "esbuild")
	for _, p := range []string{esbuild, filepath.Join(root, "web", "test", "node_modules", "kysely"), filepath.Join(root, "web", "test", "node_modules", "drizzle-orm")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run scripts/deps.sh (npm ci in web/ and web/test/)", p)
		}
	}
	out := t.TempDir()
	buildWasm(t, root, out)
	copyFile(t, filepath.Join(root, "wasm", "bitkit.mjs"), filepath.Join(out, "bitkit.mjs"))
	copyFile(t, filepath.Join(root, "wasm", "testdata", "txapp", "index.html"), filepath.Join(out, "index.html"))
	bundle := exec.CommandContext(t.Context(), esbuild, filepath.Join("wasm", "testdata", "txapp", "browser.mjs"),
		"--bundle", "--format=esm", "--target=es2022", "--outfile="+filepath.Join(out, "app.js"))
	bundle.Dir = root
	bundle.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(root, "web", "test", "node_modules"))
	if b, err := bundle.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}

	origin := bitdtest.ServeDir(t, out)
	s := bitdtest.Start(t, bitdtest.Args("--allowed-origins", origin))
	db := "tx" + strings.ReplaceAll(bitdtest.UniqueName(""), "-", "")
	q := url.Values{"endpoint": {s.Endpoint}, "key": {s.APIKey}, "user": {s.User}, "db": {db}}
	cmd := exec.CommandContext(t.Context(), bitdtest.Node(t), filepath.Join(root, "wasm", "testdata", "pkgapp", "run.mjs"))
	cmd.Dir = filepath.Join(root, "web", "test")
	cmd.Env = append(os.Environ(), "APP_URL="+origin+"/index.html?"+q.Encode(), "CHROMIUM="+bitdtest.Chromium(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("run.mjs: %v\n%s%s\nbitd log:\n%s", err, b, stderr.Bytes(), s.Logs())
	}
	var got struct {
		Outcome struct {
			Fatal        string
			Worker, Main bitdtest.TxOutcome
		}
		Errors []string
	}
	if err := jsonx.Unmarshal(b, &got); err != nil {
		t.Fatalf("run.mjs printed %s: %v", b, err)
	}
	if got.Outcome.Fatal != "" || len(got.Errors) > 0 {
		t.Fatalf("the app failed: %s, page errors %q", got.Outcome.Fatal, got.Errors)
	}
	t.Logf("outcome: %s", b)
	bitdtest.CheckTxOutcome(t, "Web Worker mode", got.Outcome.Worker)
	bitdtest.CheckTxOutcome(t, "main thread", got.Outcome.Main)
}

// TestTransactionTypings type-checks wasm/testdata/txapp/types.mts with
// tsc --strict (kysely and drizzle-orm from web/test/node_modules) against
// the typings as the package ships them: bitkit.d.mts, kysely.d.mts,
// drizzle.d.mts. Only errors in those files and the example count (drizzle's
// own declarations of its other dialects need packages not installed).
func TestTransactionTypings(t *testing.T) {
	t.Parallel()
	root := bitdtest.RepoRoot()
	modules := filepath.Join(root, "web", "test", "node_modules")
	tsc := filepath.Join(modules, "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatal("typescript is not installed in web/test: run scripts/deps.sh (npm ci in web/test)")
	}
	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "wasm", "bitkit.d.ts"), filepath.Join(dir, "bitkit.d.mts"))
	for _, f := range []string{"kysely.d.mts", "drizzle.d.mts"} {
		copyFile(t, filepath.Join(root, "wasm", f), filepath.Join(dir, f))
	}
	copyFile(t, filepath.Join(root, "wasm", "testdata", "txapp", "types.mts"), filepath.Join(dir, "app.mts"))
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	cfg := `{"compilerOptions": {"strict": true, "noEmit": true, "module": "nodenext", "moduleResolution": "nodenext",
		"target": "es2022", "lib": ["es2022", "dom"]}, "files": ["app.mts"]}`
	if err := os.WriteFile(filepath.Join(dir, "tsconfig.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bitdtest.Node(t), tsc, "-p", ".")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput() // drizzle's other dialects fail; only ours count
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, " ") && strings.Contains(line, "error TS") && !strings.Contains(line, "node_modules") {
			ours = append(ours, line)
		}
	}
	if len(ours) > 0 {
		t.Fatalf("tsc --strict over the transaction typings:\n%s", strings.Join(ours, "\n"))
	}
}
