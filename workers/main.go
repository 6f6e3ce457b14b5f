//go:build js && wasm

// Command worker is bitkit's Cloudflare Worker (built by build.sh into
// build/: app.wasm plus syumai/workers' JS glue). It serves package handler,
// with the Worker's vars and secrets as configuration. Its requests to bitd
// go through jsfetch (core's transport on the Worker's fetch, called
// so that syumai's Proxy of globalThis cannot make it throw "Illegal
// invocation"), which aborts the fetch when a query's deadline passes.
// With BITKIT_USERNAME and BITKIT_PASSWORD, the token of the login is kept
// in the KV namespace bound as BITKIT_TOKEN_KV (kvcache.go).
package main

import (
	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/jsfetch"
	"github.com/bitkit-dev/bitkit/workers/handler"
	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare"
)

func main() {
	core.DefaultFetcher = jsfetch.Fetcher{}
	workers.Serve(handler.New(handler.Config{Getenv: cloudflare.Getenv, TokenCache: tokenCache}))
}
