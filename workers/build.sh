#!/usr/bin/env bash
# build.sh: build the Worker bundle into build/ (worker.mjs, runtime.mjs,
# wasm_exec.js, app.wasm). Usage: workers/build.sh [outdir [package]]; the
# package (default ".", bitkit's Worker) may be your own main package, such as
# ./examples/customroute (docs/serverless.md, "Routes of your own").
#
# syumai's wasm_exec.js is used as generated: bitkit's requests to bitd go
# through jsfetch, which calls fetch without a receiver, so the
# Proxy of globalThis that syumai hands Go cannot make it throw "Illegal
# invocation" (no patched wasm_exec.js), and contexts abort the fetch.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
out=${1:-build}
pkg=${2:-.}
go tool workers-assets-gen -mode=go -o "$out"
CGO_ENABLED=0 GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" -o "$out/app.wasm" "$pkg"
raw=$(stat -c %s "$out/app.wasm")
gz=$(gzip -9 -c "$out/app.wasm" | wc -c)
echo "build.sh: $out/app.wasm $raw bytes, $gz bytes gzipped"
