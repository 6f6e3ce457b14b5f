//go:build !js

package web

import (
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestDashboardSharing drives the Sharing tab in headless Chromium
// (web/test/sharing.mjs): the owner shares a database with another user,
// sees them listed, changes their role and removes them, while the other
// user's dashboard follows.
func TestDashboardSharing(t *testing.T) {
	root := bitdtest.RepoRoot()
	bitdtest.Chromium(t)
	origin := bitdtest.ServeDir(t, bundle(t, root))
	s := bitdtest.Start(t, bitdtest.Args("--allowed-origins", origin))
	ownerKey := s.NewUser(t, "shareowner", "")
	friendKey := s.NewUser(t, "sharefriend", "")
	out, err := bitdtest.RunWebScript(t, "sharing.mjs", "sharing.log", 5*time.Minute,
		"BITKIT_ENDPOINT="+s.Endpoint, "SITE_URL="+origin,
		"OWNER_USER=shareowner", "OWNER_KEY="+ownerKey, "FRIEND_USER=sharefriend", "FRIEND_KEY="+friendKey)
	t.Logf("sharing.mjs output:\n%s", out)
	if err != nil {
		t.Fatalf("sharing tests failed (%v); bitd log:\n%s", err, s.Logs())
	}
	if !strings.Contains(string(out), "ALL PASSED") {
		t.Fatal("sharing.mjs exited 0 without reporting ALL PASSED")
	}
}
