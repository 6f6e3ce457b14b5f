package core

import (
	"strings"
	"testing"
)

// TestEscapeQuotes: the multipart header quoting matches mime/multipart's
// (a strings.Replacer of backslash, quote, CR and LF).
func TestEscapeQuotes(t *testing.T) {
	t.Parallel()
	ref := strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "%0D", "\n", "%0A")
	for _, s := range []string{"", "plain.csv", `a"b`, `c:\dir\f.csv`, "x\r\ny", `\"`, "ü\"\n", "%0A"} {
		if got, want := escapeQuotes(s), ref.Replace(s); got != want {
			t.Errorf("escapeQuotes(%q) = %q, want %q", s, got, want)
		}
	}
}
