package api

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps the HTTP surface above the access layer and apart from
// the wire proxy: api reaches the proxy only through cmd/bitd, which builds
// both.
func TestLayers(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list api's dependencies: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages, too few to be real:\n%s", len(deps), out)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/bitkit-dev/bitkit/server/internal/proxy") {
			t.Errorf("package api depends on %s: the HTTP surface must not import the wire proxy (put what both need in access or below)", p)
		}
	}
}
