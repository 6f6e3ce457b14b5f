//go:build js && wasm

// Command worker is bitkit's Cloudflare Worker (built by build.sh into
// build/: app.wasm plus syumai/workers' JS glue). It serves package handler,
// with the Worker's vars and secrets as configuration and Go's own
// fetch-based HTTP transport, which build.sh makes usable under workerd so
// that query deadlines abort the outbound fetch.
package main

import (
	"github.com/bitkit-dev/bitkit/workers/handler"
	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare"
)

func main() {
	workers.Serve(handler.New(handler.Config{Getenv: cloudflare.Getenv}))
}
