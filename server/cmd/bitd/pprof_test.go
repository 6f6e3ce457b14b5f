package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPprofListener checks that --pprof serves the Go profiles on a
// listener of its own and stops with the returned function.
func TestPprofListener(t *testing.T) {
	var logs bytes.Buffer
	stop, err := startPprof("127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	url := regexp.MustCompile(`pprof=(http://\S+/debug/pprof/)`).FindStringSubmatch(logs.String())
	if url == nil {
		t.Fatalf("no pprof address in the log: %s", logs.String())
	}
	resp, err := http.Get(url[1] + "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine profile:") {
		t.Fatalf("status %d: %.200s", resp.StatusCode, b)
	}
	stop()
	if _, err := http.Get(url[1]); err == nil {
		t.Error("the pprof listener still answers after stop")
	}
	if s, err := startPprof("", nil); err != nil || s == nil {
		t.Errorf(`startPprof("") = (nil: %v), %v; want a no-op`, s == nil, err)
	}
}
