//go:build !js

package core

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps core light: only the standard library, bitkit's own
// packages and goccy/go-json (natively; never under js/wasm).
func TestDependencies(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list core's dependencies: %v", err)
	}
	for _, goos := range []string{"", "js"} {
		t.Run("GOOS="+goos, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...")
			cmd.Dir = "."
			cmd.Env = os.Environ()
			if goos != "" {
				cmd.Env = append(cmd.Env, "GOOS=js", "GOARCH=wasm")
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			sawCore := false
			for _, p := range strings.Fields(string(out)) {
				switch {
				case p == "github.com/bitkit-dev/bitkit/core":
					sawCore = true
				case strings.HasPrefix(p, "github.com/bitkit-dev/bitkit/"):
				case strings.HasPrefix(p, "github.com/goccy/go-json"):
					if goos == "js" {
						t.Errorf("%s is linked under js/wasm; internal/jsonx must select encoding/json there", p)
					}
				default:
					t.Errorf("core depends on %s: only the standard library, bitkit packages and goccy/go-json are allowed", p)
				}
			}
			if !sawCore {
				t.Fatalf("go list did not list core itself:\n%s", out)
			}
		})
	}
}

// TestNoNetHTTPUnderJS keeps net/http (and the net package it drags in) out
// of the js/wasm build of core: a browser has fetch, and net/http is most of
// the wasm client's weight. The program supplies a Fetcher instead.
func TestNoNetHTTPUnderJS(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list core's dependencies: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".", "../jsfetch")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list listed too little:\n%s", out)
	}
	for _, p := range deps {
		if p == "net" || p == "net/http" || p == "mime/multipart" || p == "crypto/tls" {
			t.Errorf("the js/wasm build of core or jsfetch links %s: keep net/http behind //go:build !js (core.Fetcher is the transport)", p)
		}
		if p == "net/url" || p == "net/netip" {
			t.Errorf("the js/wasm build of core or jsfetch links %s (~70 KB gzipped): use internal/urlx, which stands in for net/url under js", p)
		}
	}
}
