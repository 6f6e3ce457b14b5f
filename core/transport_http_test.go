//go:build !js

package core

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWithHTTPClientCopies(t *testing.T) {
	t.Parallel()
	hc := &http.Client{Timeout: 3 * time.Second}
	c, err := NewClient("", WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if hc.Transport != nil || hc.CheckRedirect != nil {
		t.Fatal("WithHTTPClient modified the caller's client")
	}
	hf, ok := c.base.(httpFetcher)
	if !ok || hf.hc.Timeout != 3*time.Second || hf.hc.CheckRedirect == nil || c.Endpoint() != DefaultEndpoint {
		t.Fatalf("base %T endpoint %s", c.base, c.Endpoint())
	}
}

func TestNativeOptionValidation(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]Option{"nil client": WithHTTPClient(nil), "nil transport": WithTransport(nil)} {
		if _, err := NewClient("", opt); err == nil || !strings.Contains(err.Error(), "nil") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
