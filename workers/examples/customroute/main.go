//go:build js && wasm

// Command customroute is a Cloudflare Worker of your own on bitkit: bitkit's
// routes (POST /query, GET /healthz) plus a route of yours that runs a fixed
// query with core and answers errors with fnhttp, the way bitkit's own
// routes do. Build it with
//
//	workers/build.sh build ./examples/customroute
//
// and deploy build/ with wrangler as for bitkit's Worker (docs/serverless.md).
// The route below is open to anyone who can reach the Worker: put your own
// check in front of it, as bitkit's POST /query checks BITKIT_WORKER_TOKEN.
package main

import (
	"encoding/json"
	"net/http"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/fnhttp"
	"github.com/bitkit-dev/bitkit/jsfetch"
	"github.com/bitkit-dev/bitkit/workers/handler"
	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare"
)

func main() {
	core.DefaultFetcher = jsfetch.Fetcher{} // core's transport on the Worker's fetch
	mux := http.NewServeMux()
	mux.Handle("/", handler.New(handler.Config{Getenv: cloudflare.Getenv}))
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, err := core.NewClient(cloudflare.Getenv("BITKIT_ENDPOINT"), core.WithAPIKey(cloudflare.Getenv("BITKIT_API_KEY")))
		if err != nil {
			fnhttp.WriteError(w, &fnhttp.Error{Status: 500, Code: "invalid_configuration", Message: "BITKIT_ENDPOINT or BITKIT_API_KEY is not set"})
			return
		}
		res, err := c.Query(r.Context(), cloudflare.Getenv("USERS_DATABASE"), "select id, name from users where id = $1", r.PathValue("id"))
		if err != nil {
			fnhttp.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"rows": res.Rows})
	})
	workers.Serve(mux)
}
