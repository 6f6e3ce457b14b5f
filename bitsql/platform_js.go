//go:build js

package bitsql

import (
	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/jsfetch"
)

// platformOptions are the core options of the build: under js/wasm the
// host's fetch, unless the program set core.DefaultFetcher.
func platformOptions() []core.Option {
	if core.DefaultFetcher != nil {
		return nil
	}
	return []core.Option{core.WithFetcher(jsfetch.Fetcher{})}
}
