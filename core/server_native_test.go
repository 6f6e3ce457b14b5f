//go:build !js

package core

import (
	"net/http"
	"net/http/httptest"
)

// startServer starts an httptest server for h on loopback; natively the
// client reaches it through net/http (DefaultFetcher).
func startServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
