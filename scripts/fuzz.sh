#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target in the repo for FUZZTIME each (default 5s).
# The seed corpora (testdata/fuzz/...) also run as plain tests in `go test`;
# this adds a short burst of coverage-guided fuzzing per target in CI.
# FUZZTIME=10m scripts/fuzz.sh runs a real campaign; FUZZ_ONLY=regexp filters targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzztime=${FUZZTIME:-5s}
only=${FUZZ_ONLY:-.}
failed=0
ran=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	mod=$dir
	while [ ! -f "$mod/go.mod" ]; do mod=$(dirname "$mod"); done
	pkg=./${dir#"$mod"}; pkg=${pkg%/}; [ "$pkg" = "." ] || pkg=./${dir#"$mod"/}
	for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "$fn" | grep -qE "$only" || continue
		echo "== fuzz $fn in ${mod#"$root"/}/$pkg for $fuzztime"
		ran=$((ran + 1))
		if ! (cd "$mod" && "$root/scripts/with-pg.sh" go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg"); then
			failed=$((failed + 1))
		fi
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' "$root" | grep -v node_modules | sort)
echo "fuzz: $ran targets, $failed failed"
[ "$failed" = 0 ]
