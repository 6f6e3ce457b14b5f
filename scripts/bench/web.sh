#!/usr/bin/env bash
# scripts/bench/web.sh (make bench-web): the browser figures of issue 7.
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
echo "bitkit.wasm: $raw bytes raw, $gz bytes gzip -9 ($(( gz * 100 / ${WASM_GZIP_BUDGET:-3145728} ))% of the budget)"
cd wasm
RUNS=${RUNS:-7} go test -run '^$' -bench BrowserLoad -benchtime 1x -count 1 -v . 2>&1 | grep -E 'Benchmark|navigation|wasm-|^(ok|FAIL)'
