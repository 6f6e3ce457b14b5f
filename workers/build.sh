#!/usr/bin/env bash
# build.sh: build the Worker bundle into build/ (worker.mjs, runtime.mjs,
# wasm_exec.js, app.wasm). Usage: workers/build.sh [outdir]
#
# It patches syumai's wasm_exec.js so that Go's own js/wasm HTTP transport can
# call fetch: syumai hands Go a Proxy of globalThis, and fetch called with the
# Proxy as `this` throws "Illegal invocation". Binding fetch to the real
# globalThis lets net/http use fetch with an AbortController, so contexts and
# timeouts cancel outbound requests (syumai's own fetch transport ignores
# them). The build fails when the line to patch is not found, e.g. after a
# syumai/workers upgrade.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=/usr/local/go/bin:$PATH
out=${1:-build}
go tool workers-assets-gen -mode=go -o "$out"
js="$out/wasm_exec.js"
node - "$js" <<'JS'
const fs = require("fs");
const file = process.argv[2];
const orig = "return Reflect.get(target, prop, target);";
const patched = 'const v = Reflect.get(target, prop, target); return (prop === "fetch" && typeof v === "function") ? v.bind(target) : v; // bitkit: fetch bound to globalThis';
const src = fs.readFileSync(file, "utf8");
const n = src.split(orig).length - 1;
if (n !== 1) {
  console.error(`build.sh: expected exactly one '${orig}' in ${file} (found ${n}); syumai/workers' wasm_exec.js changed: re-check the fetch patch`);
  process.exit(1);
}
fs.writeFileSync(file, src.replace(orig, patched));
JS
grep -q -F 'bitkit: fetch bound to globalThis' "$js" || { echo "build.sh: the fetch patch did not apply to $js" >&2; exit 1; }
CGO_ENABLED=0 GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" -o "$out/app.wasm" .
raw=$(stat -c %s "$out/app.wasm")
gz=$(gzip -9 -c "$out/app.wasm" | wc -c)
echo "build.sh: $out/app.wasm $raw bytes, $gz bytes gzipped"
