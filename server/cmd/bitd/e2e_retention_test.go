package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestExportRetentionInvalid checks that --export-retention 0 or negative
// (flag or BITD_EXPORT_RETENTION) stops bitd before it starts, with a
// message naming the flag.
func TestExportRetentionInvalid(t *testing.T) {
	t.Parallel()
	bin := bitdtest.Bitd(t)
	for _, tc := range []struct{ flag, env string }{{"0", ""}, {"-1h", ""}, {"", "0"}} {
		args := []string{"serve", "--http", "127.0.0.1:0"}
		if tc.flag != "" {
			args = append(args, "--export-retention", tc.flag)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "BITD_DATABASE_URL=postgres://nobody@127.0.0.1:1/x")
		if tc.env != "" {
			cmd.Env = append(cmd.Env, "BITD_EXPORT_RETENTION="+tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--export-retention") {
			t.Errorf("flag %q env %q: %v\n%s", tc.flag, tc.env, err, out)
		}
	}
}
