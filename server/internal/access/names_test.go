package access

import (
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		full    string
		ok      bool
		account string
	}{
		{"alice/db", true, "alice"},
		{"db", true, "def"},
		{"_a/B-c_1", true, "_a"},
		{strings.Repeat("a", 38) + "/" + strings.Repeat("b", 23), true, strings.Repeat("a", 38)},
		{strings.Repeat("a", 39) + "/b", false, ""},
		{"a/" + strings.Repeat("b", 24), false, ""},
		{"-a/b", false, ""},
		{"a/b c", false, ""},
		{"a/", false, ""},
		{"/b", false, ""},
		{"a/b/c", false, ""},
		{"a/bé", false, ""},
	} {
		acc, _, err := SplitFullName(tc.full, "def")
		if (err == nil) != tc.ok || (tc.ok && acc != tc.account) {
			t.Errorf("SplitFullName(%q) = %q, %v; want ok=%v", tc.full, acc, err, tc.ok)
		}
		if err != nil && apierr.As(err).Code != "invalid_name" {
			t.Errorf("SplitFullName(%q) code %q", tc.full, apierr.As(err).Code)
		}
	}
}

// FuzzSplitFullName checks that accepted names obey the naming rules.
func FuzzSplitFullName(f *testing.F) {
	for _, s := range []string{"a/b", "b", "-a/b", "a/b/c", "é/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, d, err := SplitFullName(s, "def")
		if err != nil {
			if apierr.As(err).Code != "invalid_name" {
				t.Fatalf("%q: code %q", s, apierr.As(err).Code)
			}
			return
		}
		if ValidateAccountName(a) != nil || ValidateDatabaseName(d) != nil {
			t.Fatalf("%q accepted as %q/%q", s, a, d)
		}
	})
}
