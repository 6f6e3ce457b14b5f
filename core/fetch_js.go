//go:build js

package core

// DefaultFetcher is the base transport of clients given no WithFetcher. A
// js/wasm build has none until the program sets it: the bitkit wasm client
// and Worker set one built on the host's fetch, so that no net/http is
// linked. Set it before creating clients.
var DefaultFetcher Fetcher

// nativeConfig is empty in js/wasm builds (no WithHTTPClient/WithTransport).
type nativeConfig struct{}

func (nativeConfig) fetcher() Fetcher { return nil }
