//go:build !js

package bitsql_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/bitsql"
	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// newDatabase creates an empty database on s and returns its full name.
func newDatabase(t *testing.T, s *bitdtest.Server) string {
	t.Helper()
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("sql%d", time.Now().UnixNano()%1e9)
	if _, err := c.CreateDatabase(t.Context(), core.CreateDatabaseRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	return s.User + "/" + name
}

func dsn(s *bitdtest.Server, database string) string {
	return s.Endpoint + "?database=" + url.QueryEscape(database)
}

func TestDriverSuite(t *testing.T) {
	s := bitdtest.Start(t)
	t.Setenv("BITKIT_API_KEY", s.APIKey)
	db, err := sql.Open("bitkit", dsn(s, newDatabase(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runSuite(t, db)
}

func TestDSN(t *testing.T) {
	t.Setenv("BITKIT_API_KEY", "")
	for dsn, want := range map[string]string{
		"postgres://h/db":                                       "server URL",
		"https://h.example":                                     "no database",
		"https://h.example?database=a/b":                        "BITKIT_API_KEY",
		"https://h.example?database=a/b&api_key=k&x=1":          `unknown parameter "x"`,
		"https://h.example?database=a/b&api_key=k&timeout=soon": "timeout",
	} {
		_, err := bitsql.ParseDSN(dsn)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDSN(%q) = %v, want an error about %s", dsn, err, want)
		}
	}
	cfg, err := bitsql.ParseDSN("https://h.example/base?database=a/b&api_key=secret-key&timeout=3s")
	if err != nil || cfg.Endpoint != "https://h.example/base" || cfg.APIKey != "secret-key" || cfg.Timeout != 3*time.Second {
		t.Fatalf("ParseDSN = %+v, %v", cfg, err)
	}
	if strings.Contains(cfg.String(), "secret-key") {
		t.Fatal("Config.String shows the key")
	}
	t.Setenv("BITKIT_API_KEY", "from-env")
	cfg, err = bitsql.ParseDSN("https://h.example?database=a/b")
	if err != nil || cfg.APIKey != "from-env" {
		t.Fatalf("key from the environment: %+v, %v", cfg, err)
	}
}

// TestDriverUnderNode runs the suite in a js/wasm build of this package's
// tests, in Node, against a real bitd (node_js_test.go).
func TestDriverUnderNode(t *testing.T) {
	node := bitdtest.Node(t)
	s := bitdtest.Start(t)
	database := newDatabase(t, s)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go is not on PATH: the js/wasm test binary is built with it")
	}
	out, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	goroot := strings.TrimSpace(string(out))
	bin := filepath.Join(t.TempDir(), "bitsql.test.wasm")
	build := exec.Command(goBin, "test", "-tags", "bitsqlnode", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the js/wasm test binary: %v\n%s", err, out)
	}
	run := exec.Command(node, "--stack-size=8192", filepath.Join(goroot, "lib", "wasm", "wasm_exec_node.js"), bin, "-test.v", "-test.run", "TestNodeSuite")
	run.Env = append(os.Environ(), "BITSQL_TEST_DSN="+dsn(s, database), "BITKIT_API_KEY="+s.APIKey)
	out, err = run.CombinedOutput()
	if err != nil {
		t.Fatalf("the suite under Node failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestNodeSuite") {
		t.Fatalf("the suite did not run under Node:\n%s", out)
	}
	t.Logf("under Node:\n%s", out)
}
