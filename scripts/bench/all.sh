#!/usr/bin/env bash
# scripts/bench/all.sh TARGET...: what `make bench` runs after deps and build.
# Runs each benchmark target (the BENCH_TARGETS of the Makefile and mk/*.mk)
# in turn, even when an earlier one fails, logs everything to
# test-artifacts/bench.log and ends with a summary: the time each target took,
# the lines that carry the figures and ratios, and the targets that failed.
# Exits non-zero when any target failed. A target that runs longer than
# BENCH_TARGET_TIMEOUT seconds (default 600) is stopped (SIGTERM to its whole
# process group, SIGKILL 20 s later) and counted as failed, so a hung
# benchmark cannot hold `make bench` forever.
#
#   scripts/bench/all.sh bench-go bench-query      # a subset
#   BENCH_LOG=/tmp/b.log scripts/bench/all.sh ...   # another log file
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
[ $# -gt 0 ] || { echo "usage: $0 TARGET... (the BENCH_TARGETS: make bench passes them)" >&2; exit 2; }
make=${MAKE:-make}
limit=${BENCH_TARGET_TIMEOUT:-600}
log=${BENCH_LOG:-test-artifacts/bench.log}
mkdir -p "$(dirname "$log")"
: >"$log"

failed=()
declare -A took rcs
for t in "$@"; do
	echo "== make $t" | tee -a "$log"
	start=$(date +%s)
	timeout -k 20 "$limit" "$make" --no-print-directory "$t" 2>&1 | tee -a "$log"
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 124 ] && echo "== make $t: stopped after ${limit}s (BENCH_TARGET_TIMEOUT)" | tee -a "$log"
	took[$t]=$(($(date +%s) - start))
	if [ "$rc" -ne 0 ]; then
		failed+=("$t")
		rcs[$t]=$rc
		echo "== make $t FAILED (exit $rc) after ${took[$t]}s" | tee -a "$log"
	else
		echo "== make $t done in ${took[$t]}s" | tee -a "$log"
	fi
done

{
	printf '\n================ bench summary (%s, %s cores, load average %s) ================\n' \
		"$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	for t in "$@"; do
		printf '\n-- %s (%ss)\n' "$t" "${took[$t]}"
		# The lines of this target's section that carry figures; for a
		# failed target, also the last lines it printed (the error).
		section=$(awk -v t="$t" '
			$0 == "== make " t { on = 1; next }
			/^== make / { on = 0 }
			on' "$log")
		printf '%s\n' "$section" |
			grep -E '^== |ratio|goal|^Benchmark|^\(|^ {4}(bitd|direct|bare|NDJSON|COPY|pgx)|^(mode|select|tpcb) |^pgbench through|bitkit\.wasm:|peak RSS|pgloader|^(import|export) |navigation|FAIL|[Ee]rror' |
			grep -vE '^(goos|goarch|pkg|cpu):|^== round' | sed 's/^/  /'
		if [ -n "${rcs[$t]:-}" ]; then
			why="exit ${rcs[$t]}"
			[ "${rcs[$t]}" = 124 ] && why="stopped after ${limit}s, BENCH_TARGET_TIMEOUT"
			printf '  FAILED (%s); its last lines:\n' "$why"
			printf '%s\n' "$section" | tail -n 8 | sed 's/^/  | /'
		fi
	done
	if [ ${#failed[@]} -gt 0 ]; then
		printf '\nFAILED: %s (see %s)\n' "${failed[*]}" "$log"
	else
		printf '\nall %d benchmark targets ran; full output in %s\n' "$#" "$log"
	fi
} | tee -a "$log"
[ ${#failed[@]} -eq 0 ]
