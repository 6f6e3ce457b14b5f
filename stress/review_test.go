package stress

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestCredentialComparisons is a code review done by the suite: it checks
// that the server compares every secret in constant time or only through a
// hash lookup, by reading the code that does it. A timing measurement over
// loopback could not show a difference of a few nanoseconds either way.
func TestCredentialComparisons(t *testing.T) {
	checks := []struct {
		file, must, what, how string
	}{
		{"server/internal/secret/secret.go", "subtle.ConstantTimeCompare(got, want)", "passwords (login)",
			"argon2id, then crypto/subtle.ConstantTimeCompare; unknown users verify against a dummy hash"},
		{"server/internal/store/identity.go", "WHERE k.hash = $1 AND k.revoked_at IS NULL`, secret.HashCredential(key)", "API keys",
			"looked up by the SHA-256 of the presented key (an index lookup on a hash the caller cannot steer), never compared as text"},
		{"server/internal/jobs/token.go", "hmac.Equal(m.Sum(nil), sig)", "download URL tokens",
			"HMAC-SHA256 checked with hmac.Equal (constant time) before the expiry is read"},
		{"server/internal/proxy/proxy.go", "subtle.ConstantTimeCompare(secret, ss.clientSecret[:])", "wire-proxy cancel keys",
			"crypto/subtle.ConstantTimeCompare"},
	}
	for _, c := range checks {
		t.Run(c.what, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(bitdtest.RepoRoot(), c.file))
			if err != nil {
				t.Fatalf("read %s: %v", c.file, err)
			}
			if !strings.Contains(string(b), c.must) {
				t.Fatalf("%s no longer contains %q: review how %s are compared and update this test", c.file, c.must, c.what)
			}
			record(t, "code review (automated grep of "+c.file+"): how "+c.what+" are compared", c.how)
		})
	}
	// Access tokens share the API key path (secret.HashCredential); make sure
	// no plain string comparison of a credential crept in anywhere.
	root := filepath.Join(bitdtest.RepoRoot(), "server")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, bad := range []string{"bytes.Equal(sig", "bytes.Equal(hash", "bytes.Equal(mac", "bytes.Equal(want", "bytes.Equal(got"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s compares a credential with %q: use crypto/subtle or hmac.Equal", p, bad)
			}
		}
		return nil
	})
	record(t, "code review (automated grep of server/): bytes.Equal on signatures, MACs, hashes", "none found")
}
