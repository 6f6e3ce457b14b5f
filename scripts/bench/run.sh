#!/usr/bin/env bash
# scripts/bench/run.sh (make bench-go): the Go `Benchmark…` functions of every
# module of the repo, run briefly, with TEST_DATABASE_URL set.
#
#   TEST_DATABASE_URL=$(scripts/pg-up.sh) scripts/bench/run.sh
#   BENCH_GO_TIME=1s scripts/bench/run.sh     # longer runs (default 500ms per benchmark)
#   BENCH_GO_ALL=1 scripts/bench/run.sh       # also the packages another target runs
#
# Every package holding a Benchmark function is found by scanning the
# *_test.go files of each module (each directory with a go.mod). A package
# whose benchmarks a dedicated BENCH_TARGETS entry already runs with its own
# settings (see OWNED below) is listed as such instead of being run twice;
# BENCH_GO_ALL=1 runs it here too. Nothing is skipped silently: every package
# is printed with what happened to it, and the script fails when any run fails.
#
# The end-to-end benchmarks (bitbench, bitbench-import, pgbench, the browser,
# the serverless adapters) are their own targets: `make bench` runs them all
# and prints one summary (scripts/bench/summary.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export PATH="/usr/local/go/bin:$PATH"

if [ -z "${TEST_DATABASE_URL:-}" ]; then
	echo "run.sh: TEST_DATABASE_URL is not set: run it as 'scripts/with-pg.sh scripts/bench/run.sh' or 'make bench-go'" >&2
	exit 2
fi
BENCH_GO_TIME=${BENCH_GO_TIME:-500ms}

# Package directory (relative to the repo root) → the make target that runs
# its benchmarks and the mk file that must still say so. When the mk file no
# longer mentions the package, run.sh runs it itself.
declare -A OWNED=(
	[server/internal/pgjson]="bench-query mk/query.mk internal/pgjson"
	[lambda/cmd/bootstrap]="bench-serverless mk/serverless.mk ./cmd/bootstrap"
	[workers/workerdtest]="bench-serverless mk/serverless.mk ./workerdtest"
	[wasm]="bench-web scripts/bench/web.sh BrowserLoad"
)

modules=$(find . -name go.mod -not -path '*/node_modules/*' -not -path './.cache/*' | sed 's|^\./||; s|/\{0,1\}go.mod$||; s|^$|.|' | sort)
failed=()
ran=0
printf 'Go benchmarks, -benchtime %s -benchmem, GOMAXPROCS %s\n' "$BENCH_GO_TIME" "$(nproc)"
for m in $modules; do
	mdir=$m
	# Directories of this module (not of a nested module) with a Benchmark function.
	pkgs=$(cd "$mdir" && grep -rl --include='*_test.go' -E '^func Benchmark[A-Z_0-9]' . 2>/dev/null |
		grep -v '/node_modules/' | xargs -r -n1 dirname | sort -u |
		while read -r d; do
			# Skip directories that belong to a nested module.
			p=$d nested=""
			while [ "$p" != "." ]; do
				[ -f "$p/go.mod" ] && { nested=1; break; }
				p=$(dirname "$p")
			done
			[ -z "$nested" ] && echo "$d"
		done)
	for d in $pkgs; do
		rel=$(echo "$mdir/${d#./}" | sed 's|^\./||; s|/\.$||; s|/$||')
		[ "$d" = "." ] && rel=$mdir
		[ "$rel" = "." ] && rel="(root)"
		if [ -z "${BENCH_GO_ALL:-}" ] && [ -n "${OWNED[$rel]:-}" ]; then
			read -r target file marker <<<"${OWNED[$rel]}"
			if grep -q -- "$marker" "$file" 2>/dev/null; then
				printf '\n== %s: run by make %s (%s); BENCH_GO_ALL=1 runs it here too\n' "$rel" "$target" "$file"
				continue
			fi
		fi
		printf '\n== %s\n' "$rel"
		ran=$((ran + 1))
		if ! (cd "$mdir" && go test -count 1 -run '^$' -bench . -benchtime "$BENCH_GO_TIME" -benchmem -timeout 10m "$d" 2>&1 |
			grep -vE '^(goos|goarch|cpu):'); then
			failed+=("$rel")
		fi
	done
done
printf '\nGo benchmarks: %d package(s) run' "$ran"
if [ ${#failed[@]} -gt 0 ]; then
	printf ', FAILED: %s\n' "${failed[*]}"
	exit 1
fi
printf ', all passed\n'
