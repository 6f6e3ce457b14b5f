#!/usr/bin/env bash
# scripts/bench/web.sh (make bench-web): the browser figures.
#  1. bitkit.wasm size raw and gzip -9 (against the CI budget in mk/web.mk);
#  2. navigation → API-ready and → first query result in headless Chromium,
#     next to a plain fetch() of the same query (BenchmarkBrowserLoad).
# Needs TEST_DATABASE_URL (make runs it through scripts/with-pg.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm=wasm/dist/bitkit.wasm
[ -f "$wasm" ] || { echo "error: $wasm missing: run make wasm" >&2; exit 1; }
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
br=$(node -e 'const z=require("zlib");const b=require("fs").readFileSync(process.argv[1]);console.log(z.brotliCompressSync(b,{params:{[z.constants.BROTLI_PARAM_QUALITY]:11,[z.constants.BROTLI_PARAM_SIZE_HINT]:b.length}}).length)' "$wasm")
echo "bitkit.wasm: $raw bytes raw, $gz bytes gzip -9, $br bytes brotli 11 ($(( gz * 100 / ${WASM_GZIP_BUDGET:-1200000} ))% of the gzip budget)"
cd wasm
RUNS=${RUNS:-7} go test -run '^$' -bench BrowserLoad -benchtime 1x -count 1 -v . 2>&1 | grep -E 'Benchmark|navigation|stream|wasm-|^(ok|FAIL)'
# 3. The dashboard (BenchmarkDashboard in web/): navigation → signed in and
#    editor ready, first row and all rows of a 200,000-row result next to a
#    plain fetch() of the same NDJSON stream, frame times while scrolling it,
#    and the gzipped bytes of a first visit.
cd ../web
RUNS=${RUNS:-3} go test -run '^$' -bench Dashboard -benchtime 1x -count 1 -v . 2>&1 | grep -E 'Benchmark|navigation|gzip -9|^(ok|FAIL)'
