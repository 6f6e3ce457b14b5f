#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target in the repo for FUZZTIME each (default 20000
# inputs; 300 for the HTTP targets in stress/, FUZZTIME_HTTP).
# The seed corpora (testdata/fuzz/...) also run as plain tests in `go test`;
# this adds a short burst of coverage-guided fuzzing per target in CI.
# FUZZTIME=10m scripts/fuzz.sh runs a real campaign; FUZZ_ONLY=regexp filters targets;
# FUZZ_TARGET_TIMEOUT (default 300 s) stops a target that takes longer: a hang fails.
#
# The default budget counts inputs, not seconds: with a wall-clock -fuzztime,
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when a busy worker misses the deadline (go.dev/issue/75804, fixed
# in Go 1.27), which a loaded 2-core CI machine hits; a count has no deadline.
# FUZZ_PARALLEL sets the fuzz workers per target (default 1: CI has 2 cores, and
# the HTTP targets in stress/ start one bitd per worker).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzztime=${FUZZTIME:-20000x}
target_timeout=${FUZZ_TARGET_TIMEOUT:-300}
only=${FUZZ_ONLY:-.}
parallel=${FUZZ_PARALLEL:-1}
# The HTTP targets in stress/ send every input to a real bitd: fewer inputs.
httptime=${FUZZTIME_HTTP:-300x}
start_all=$SECONDS
failed=0
ran=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	mod=$dir
	while [ ! -f "$mod/go.mod" ]; do mod=$(dirname "$mod"); done
	pkg=./${dir#"$mod"}; pkg=${pkg%/}; [ "$pkg" = "." ] || pkg=./${dir#"$mod"/}
	for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "$fn" | grep -qE "$only" || continue
		echo "== fuzz $fn in ${mod#"$root"/}/${pkg#./}"
		ran=$((ran + 1))
		t0=$SECONDS
		ft=$fuzztime
		case "$mod" in "$root/stress") ft=$httptime ;; esac
		if ! (cd "$mod" && timeout "$target_timeout" "$root/scripts/with-pg.sh" go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$ft" -parallel "$parallel" "$pkg"); then
			failed=$((failed + 1))
			echo "FAIL fuzz $fn (${mod#"$root"/}/${pkg#./})"
		fi
		echo "== fuzz $fn took $((SECONDS - t0))s"
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' "$root" | grep -v node_modules | sort)
echo "fuzz: $ran targets, $failed failed, $((SECONDS - start_all))s in all"
[ "$failed" = 0 ]
