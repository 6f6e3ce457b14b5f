//go:build js

package core_test

import (
	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/jsfetch"
)

// Under js/wasm the core tests run over the fetch transport that the wasm
// client uses (Node 20 has fetch), against Node HTTP servers (server_js_test.go).
func init() { core.DefaultFetcher = jsfetch.Fetcher{} }
