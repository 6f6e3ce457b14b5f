package config

import "testing"

// TestTraceFlags checks --trace-sample (0 to 1, default 1), --trace-sql
// (off by default) and that --otlp-endpoint is off by default.
func TestTraceFlags(t *testing.T) {
	t.Parallel()
	checkFlags(t, []flagCase{
		{nil, ""},
		{[]string{"--otlp-endpoint", "http://127.0.0.1:4318", "--trace-sample", "0.25", "--trace-sql"}, ""},
		{[]string{"--trace-sample", "0"}, ""},
		{[]string{"--trace-sample", "1.5"}, "--trace-sample must be between 0 and 1"},
		{[]string{"--trace-sample", "-0.1"}, "--trace-sample"},
		{[]string{"--trace-sample", "NaN"}, "--trace-sample"},
	})
	if d := Default(); d.TraceSample != 1 || d.TraceSQL || d.OTLPEndpoint != "" {
		t.Errorf("defaults: --trace-sample %v, --trace-sql %v, --otlp-endpoint %q; want 1, false, empty", d.TraceSample, d.TraceSQL, d.OTLPEndpoint)
	}
}
