//go:build !js

package workerdtest_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/workers/workerdtest"
)

// TestWorkerdTransactions runs the JavaScript transaction suite
// (wasm/testdata/txapp/suite.mjs: client.transaction, the Kysely dialect,
// the Drizzle adapter) in workerd against a real bitd: the browser build of
// bitkit.wasm loaded with load({ wasmModule }), kysely and drizzle-orm
// bundled by esbuild from web/test/node_modules.
func TestWorkerdTransactions(t *testing.T) {
	t.Parallel()
	root := bitdtest.RepoRoot()
	esbuild := filepath.Join(root, "web", "node_modules", ".bin", "esbuild")
	for _, p := range []string{esbuild, filepath.Join(root, "web", "test", "node_modules", "kysely"), filepath.Join(root, "web", "test", "node_modules", "drizzle-orm")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run scripts/deps.sh (npm ci in web/ and web/test/)", p)
		}
	}
	// The bundle in the layout workerd.capnp.tmpl embeds: worker.mjs,
	// wasm_exec.js, runtime.mjs (unused here) and app.wasm.
	dir := t.TempDir()
	run := func(name string, env []string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
	}
	run("go", []string{"GOOS=js", "GOARCH=wasm"}, "build", "-trimpath", "-gcflags=github.com/bitkit-dev/bitkit/...=-l", "-ldflags=-s -w",
		"-o", filepath.Join(dir, "app.wasm"), "./wasm") // mk/web.mk's WASM_BUILD_FLAGS
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	wasmExec, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"wasm_exec.js": wasmExec, "runtime.mjs": []byte("export {};\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(esbuild, []string{"NODE_PATH=" + filepath.Join(root, "web", "test", "node_modules")},
		filepath.Join("wasm", "testdata", "txapp", "worker.mjs"), "--bundle", "--format=esm", "--target=es2022",
		"--external:./wasm_exec.js", "--external:./app.wasm", "--outfile="+filepath.Join(dir, "worker.mjs"))

	s := bitdtest.Start(t)
	w := workerdtest.StartBundle(t, dir)
	q := url.Values{"endpoint": {s.Endpoint}, "key": {s.APIKey}, "user": {s.User},
		"db": {"tx" + strings.ReplaceAll(bitdtest.UniqueName(""), "-", "")}}
	resp, err := http.Get(w.URL + "/run?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the suite failed in workerd: %d %s\nworkerd log:\n%s\nbitd log:\n%s", resp.StatusCode, b, w.Logs(), s.Logs())
	}
	var o bitdtest.TxOutcome
	if err := jsonx.Unmarshal(b, &o); err != nil {
		t.Fatalf("the Worker answered %s: %v", b, err)
	}
	t.Logf("outcome: %s", b)
	bitdtest.CheckTxOutcome(t, "workerd", o)
}
