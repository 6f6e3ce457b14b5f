package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// TestOperatorFlags checks --allow-private-urls and --download-url-ttl: the
// default comes from the Config the caller prepared (bitd dev sets
// AllowPrivateFileURLs first), the flag overrides it, and a negative TTL is
// rejected.
func TestOperatorFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		devDefault bool
		args       []string
		private    bool
		ttl        time.Duration
		wantErr    bool
	}{
		{"serve defaults", false, nil, false, 0, false},
		{"dev defaults", true, nil, true, 0, false},
		{"dev turned off", true, []string{"--allow-private-urls=false"}, false, 0, false},
		{"serve turned on", false, []string{"--allow-private-urls"}, true, 0, false},
		{"ttl", false, []string{"--download-url-ttl", "5m"}, false, 5 * time.Minute, false},
		{"negative ttl", false, []string{"--download-url-ttl", "-1s"}, false, -time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.DatabaseURL = "postgres://x@127.0.0.1/postgres"
			c.AllowPrivateFileURLs = tc.devDefault
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if c.AllowPrivateFileURLs != tc.private || c.DownloadURLTTL != tc.ttl {
				t.Fatalf("AllowPrivateFileURLs=%v DownloadURLTTL=%v; want %v %v", c.AllowPrivateFileURLs, c.DownloadURLTTL, tc.private, tc.ttl)
			}
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v; want error %v", err, tc.wantErr)
			}
		})
	}
}

// TestTempFileLimit checks --temp-file-limit: PostgreSQL's size syntax is
// accepted and written in canonical form, -1 means no limit, and 0, junk and
// sizes PostgreSQL would refuse are rejected with a message naming the flag.
func TestTempFileLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string // want "" = rejected
	}{
		{"5GB", "5GB"}, {"5gb", "5GB"}, {" 5 GB ", "5GB"}, {"5120MB", "5GB"}, {"1536kB", "1536kB"},
		{"1.5GB", "1536MB"}, {"1048576", "1GB"}, {"2048B", "2kB"}, {"1TB", "1TB"},
		{"2147483647kB", "2147483647kB"}, {"-1", "-1"},
		{"0", ""}, {"0GB", ""}, {"100B", ""}, {"2TB", ""}, {"-5GB", ""}, {"5 GiB", ""}, {"", ""}, {"GB", ""}, {"1.2.3MB", ""},
	} {
		c := Default()
		c.DatabaseURL = "postgres://x@127.0.0.1/postgres"
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		if err := fs.Parse([]string{"--temp-file-limit", tc.in}); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "--temp-file-limit") {
				t.Errorf("%q: Validate() = %v, want an error naming --temp-file-limit", tc.in, err)
			}
			continue
		}
		if err != nil || c.TempFileLimit != tc.want {
			t.Errorf("%q: Validate() = %v, TempFileLimit %q; want %q", tc.in, err, c.TempFileLimit, tc.want)
		}
	}
	if c := Default(); c.TempFileLimit != "5GB" {
		t.Errorf("default %q, want 5GB", c.TempFileLimit)
	}
}

// TestExportRetention checks --export-retention / BITD_EXPORT_RETENTION:
// the default is 168h, a positive value is taken, and 0 or a negative value
// is rejected with a message naming the flag.
func TestExportRetention(t *testing.T) {
	if c := Default(); c.ExportRetention != 168*time.Hour {
		t.Fatalf("default %v, want 168h", c.ExportRetention)
	}
	parse := func(args []string) (*Config, error) {
		c := parsed(t, args)
		return c, c.Validate()
	}
	if c, err := parse(nil); err != nil || c.ExportRetention != 168*time.Hour {
		t.Errorf("no flag: %v %v", c.ExportRetention, err)
	}
	if c, err := parse([]string{"--export-retention", "720h"}); err != nil || c.ExportRetention != 720*time.Hour {
		t.Errorf("720h: %v %v", c.ExportRetention, err)
	}
	for _, v := range []string{"0", "0s", "-1h"} {
		if _, err := parse([]string{"--export-retention", v}); err == nil || !strings.Contains(err.Error(), "--export-retention") {
			t.Errorf("%q: Validate() = %v, want an error naming --export-retention", v, err)
		}
	}
	t.Setenv("BITD_EXPORT_RETENTION", "48h")
	if c, err := parse(nil); err != nil || c.ExportRetention != 48*time.Hour {
		t.Errorf("env 48h: %v %v", c.ExportRetention, err)
	}
	t.Setenv("BITD_EXPORT_RETENTION", "0")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "BITD_EXPORT_RETENTION") {
		t.Errorf("env 0: Validate() = %v, want an error", err)
	}
	if _, err := parse([]string{"--export-retention", "24h"}); err != nil {
		t.Errorf("the flag overrides the environment: %v", err)
	}
}

// TestSlowClientAndBufferFlags checks the HTTP timeout and memory-budget
// flags: defaults, overrides, and refusal of values that would disable a
// bound by accident.
func TestSlowClientAndBufferFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		hdr     time.Duration
		read    time.Duration
		idle    time.Duration
		buf     int64
		wantErr string
	}{
		{"defaults", nil, 10 * time.Second, time.Minute, 2 * time.Minute, 0, ""},
		{"set", []string{"--http-read-header-timeout", "2s", "--http-read-timeout", "3s", "--http-idle-timeout", "4s", "--max-buffered-bytes", "1048576"},
			2 * time.Second, 3 * time.Second, 4 * time.Second, 1 << 20, ""},
		{"zero timeout", []string{"--http-read-timeout", "0s"}, 10 * time.Second, 0, 2 * time.Minute, 0, "--http-read-timeout"},
		{"negative budget", []string{"--max-buffered-bytes-per-account", "-1"}, 10 * time.Second, time.Minute, 2 * time.Minute, 0, "--max-buffered-bytes-per-account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := parsed(t, tc.args)
			if c.HTTPReadHeaderTimeout != tc.hdr || c.HTTPReadTimeout != tc.read || c.HTTPIdleTimeout != tc.idle || c.MaxBufferedBytes != tc.buf {
				t.Fatalf("got header %v read %v idle %v buffered %d; want %v %v %v %d",
					c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPIdleTimeout, c.MaxBufferedBytes, tc.hdr, tc.read, tc.idle, tc.buf)
			}
			wantValid(t, c, tc.wantErr)
		})
	}
}

// TestPprofAndPoolFlags checks --pprof (loopback only unless
// --pprof-any-addr) and --pool-max-conns.
func TestPprofAndPoolFlags(t *testing.T) {
	t.Parallel()
	checkFlags(t, []flagCase{
		{nil, ""},
		{[]string{"--pprof", "127.0.0.1:6060"}, ""},
		{[]string{"--pprof", "[::1]:6060"}, ""},
		{[]string{"--pprof", "localhost:0"}, ""},
		{[]string{"--pprof", "0.0.0.0:6060"}, "loopback"},
		{[]string{"--pprof", ":6060"}, "loopback"},
		{[]string{"--pprof", "10.0.0.5:6060"}, "loopback"},
		{[]string{"--pprof", "10.0.0.5:6060", "--pprof-any-addr"}, ""},
		{[]string{"--pprof", "6060"}, "host:port"},
		{[]string{"--pool-max-conns", "1"}, ""},
		{[]string{"--pool-max-conns", "-1"}, "--pool-max-conns"},
	})
}

// flagCase is a command line and what Validate must say of it: wantErr ""
// for nothing, else a word of its error.
type flagCase struct {
	args    []string
	wantErr string
}

// checkFlags checks each case in a parallel subtest named by its args.
func checkFlags(t *testing.T, cases []flagCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			wantValid(t, parsed(t, tc.args), tc.wantErr)
		})
	}
}

// wantValid checks c.Validate(): no error when wantErr is "", else an
// error mentioning wantErr.
func wantValid(t *testing.T, c *Config, wantErr string) {
	t.Helper()
	err := c.Validate()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("Validate() = %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("Validate() = %v; want an error mentioning %q", err, wantErr)
	}
}

// parsed returns the defaults with a database URL, then args applied.
func parsed(t *testing.T, args []string) *Config {
	t.Helper()
	c := Default()
	c.DatabaseURL = "postgres://x@127.0.0.1/postgres"
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestJobRescueAfter checks --job-rescue-after: unset is 0 (the jobs'
// default), a value is kept, and negative or very short values are refused
// with the flag's name.
func TestJobRescueAfter(t *testing.T) {
	parse := func(args []string) (*Config, error) {
		c := parsed(t, args)
		return c, c.Validate()
	}
	if c, err := parse(nil); err != nil || c.JobRescueAfter != 0 {
		t.Errorf("no flag: %v %v", c.JobRescueAfter, err)
	}
	if c, err := parse([]string{"--job-rescue-after", "5m"}); err != nil || c.JobRescueAfter != 5*time.Minute {
		t.Errorf("5m: %v %v", c.JobRescueAfter, err)
	}
	for _, v := range []string{"-1m", "2s"} {
		if _, err := parse([]string{"--job-rescue-after", v}); err == nil || !strings.Contains(err.Error(), "--job-rescue-after") {
			t.Errorf("%q: Validate() = %v, want an error naming --job-rescue-after", v, err)
		}
	}
	t.Setenv("BITD_JOB_RESCUE_AFTER", "90s")
	if c, err := parse(nil); err != nil || c.JobRescueAfter != 90*time.Second {
		t.Errorf("env 90s: %v %v", c.JobRescueAfter, err)
	}
}
