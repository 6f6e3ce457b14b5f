package config

import (
	"flag"
	"io"
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
