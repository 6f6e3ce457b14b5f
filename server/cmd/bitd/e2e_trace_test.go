package main

import (
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// TestTracingReceiverDown runs bitd with --otlp-endpoint pointing at a
// port nothing listens on: requests are served as usual, the access log
// line of a request that carried a client's traceparent has its trace_id,
// the exporter's failure is logged once (not once per batch) and never
// with the API key.
func TestTracingReceiverDown(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--otlp-endpoint", "http://127.0.0.1:1"),
		bitdtest.Env("OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_EXPORTER_OTLP_TIMEOUT=500"))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for i := range 5 {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.Endpoint+"/v2beta/db/", nil)
		req.Header.Set("Authorization", "Bearer "+s.APIKey)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("request %d with the receiver down: %s", i, res.Status)
		}
		time.Sleep(100 * time.Millisecond) // several export batches
	}
	testwait.Eventually(t, 60*time.Second, func() error {
		if !strings.Contains(s.Logs(), "tracing: exporting spans failed") {
			return errors.New("no exporter error in the log yet")
		}
		return nil
	})
	logs := s.Logs()
	if n := strings.Count(logs, "tracing: exporting spans failed"); n != 1 {
		t.Errorf("the exporter error was logged %d times, want once a minute at most", n)
	}
	if !strings.Contains(logs, "trace_id="+traceID) {
		t.Errorf("no access log line with trace_id=%s", traceID)
	}
	if strings.Contains(logs, s.APIKey) {
		t.Error("the log holds the API key")
	}
}

// TestTracingFlagsRefused: a bad --otlp-endpoint or --trace-sample stops
// bitd at start with a usage error that says what to do and never echoes
// a password given in the URL.
func TestTracingFlagsRefused(t *testing.T) {
	t.Parallel()
	bin := bitdtest.Bitd(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--otlp-endpoint", "https://bitd:hunter2secret@collector:4318"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{[]string{"--otlp-endpoint", "collector:4318"}, "http:// or https:// URL"},
		{[]string{"--trace-sample", "2"}, "--trace-sample must be between 0 and 1"},
	} {
		cmd := exec.Command(bin, append([]string{"serve", "--database-url", "postgres://127.0.0.1:1/x"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "hunter2secret") {
			t.Errorf("bitd serve %v: %v\n%s\nwant exit status 2 with %q and no password", tc.args, err, out, tc.want)
		}
	}
}
