// Package webui serves the bitkit dashboard (web/ plus the wasm client)
// embedded into bitd.
//
// `make web` fills dist/ with the dashboard files, bitkit.wasm (and a gzipped
// copy, bitkit.wasm.gz), wasm_exec.js, bitkit.mjs and bitkit.d.ts; `go build`
// then embeds them. When dist/ holds no index.html (bitd built without
// `make web`), every page answers 200 with a short HTML page that explains how
// to build the dashboard.
//
// Wiring (cmd/bitd router, as the catch-all after the API routes):
//
//	mux.Handle("/", webui.Handler())
//
// The dashboard calls the API on its own origin, so it needs no CORS entry.
package webui

import (
	"embed"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var embedded embed.FS

// Available reports whether the dashboard was built into this binary.
func Available() bool {
	_, err := fs.Stat(embedded, "dist/index.html")
	return err == nil
}

// Handler returns the handler that serves the dashboard for GET and HEAD
// requests (other methods get 405). Paths without a file extension that match
// no file serve index.html, so the dashboard's own links work; missing assets
// are 404. Files with a .gz copy beside them (bitkit.wasm, app.js, style.css)
// are sent gzip-compressed to clients that accept gzip.
// It is safe for concurrent use.
func Handler() http.Handler {
	sub, err := fs.Sub(embedded, "dist")
	if err != nil {
		panic("webui: embedded dist directory missing: " + err.Error()) // cannot happen: the embed pattern guarantees it
	}
	return handler(sub)
}

// handler serves the dashboard files in sub (the contents of dist/).
func handler(sub fs.FS) http.Handler {
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return http.HandlerFunc(notBuilt)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard only answers GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if _, err := fs.Stat(sub, name); err != nil && path.Ext(name) == "" {
			r = r.Clone(r.Context())
			r.URL.Path = "/"
			name = "index.html"
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		switch path.Ext(name) {
		case ".wasm":
			h.Set("Content-Type", "application/wasm")
		case ".mjs", ".js":
			h.Set("Content-Type", "text/javascript; charset=utf-8")
		case ".css":
			h.Set("Content-Type", "text/css; charset=utf-8")
		case ".ts":
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
		// A file with a gzipped copy beside it (make web writes them for the
		// wasm, the JS bundle and the CSS) is sent compressed when accepted.
		if f, err := sub.Open(name + ".gz"); err == nil {
			defer f.Close()
			h.Add("Vary", "Accept-Encoding")
			if rs, ok := f.(io.ReadSeeker); ok && acceptsGzip(r) { // embedded files seek: no copy
				h.Set("Content-Encoding", "gzip")
				http.ServeContent(w, r, name, time.Time{}, rs)
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func notBuilt(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write([]byte(notBuiltPage))
}

const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bitkit: dashboard not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>The bitkit dashboard is not built into this bitd</h1>
<p>The HTTP API works (under <code>/v2beta/</code>). To serve the dashboard here, build it and rebuild bitd:</p>
<pre><code>make web &amp;&amp; make build</code></pre>
<p><code>make web</code> compiles the wasm client and copies the dashboard into
<code>server/internal/webui/dist/</code>, which bitd embeds. See <code>docs/web.md</code>.</p>
</body></html>
`
