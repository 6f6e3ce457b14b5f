package config

import (
	"testing"
	"time"
)

// TestMetricsAndDrainFlags checks --metrics (loopback only unless
// --metrics-any-addr), --drain-delay and --drain-timeout.
func TestMetricsAndDrainFlags(t *testing.T) {
	t.Parallel()
	checkFlags(t, []flagCase{
		{nil, ""},
		{[]string{"--metrics", "127.0.0.1:9090"}, ""},
		{[]string{"--metrics", "[::1]:0"}, ""},
		{[]string{"--metrics", "0.0.0.0:9090"}, "--metrics must listen on a loopback address"},
		{[]string{"--metrics", ":9090"}, "loopback"},
		{[]string{"--metrics", "10.0.0.5:9090", "--metrics-any-addr"}, ""},
		{[]string{"--metrics", "9090"}, "host:port"},
		{[]string{"--drain-delay", "10s", "--drain-timeout", "1m"}, ""},
		{[]string{"--drain-delay", "-1s"}, "--drain-delay"},
		{[]string{"--drain-timeout", "0s"}, "--drain-timeout"},
	})
	if d := Default().DrainTimeout; d != 30*time.Second {
		t.Errorf("default --drain-timeout %v, want 30s", d)
	}
}
