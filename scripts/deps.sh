#!/usr/bin/env bash
# deps.sh: install everything the build, the demo and the test suite need on a
# fresh Debian machine (run as root, or with sudo). Idempotent and quick when
# everything is there. Areas list extra packages in scripts/deps.d/*.sh, which
# set APT_PACKAGES+=(...) and may define npm installs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
APT_PACKAGES=(postgresql-15 postgresql-client-15 ca-certificates)
BENCH_APT_PACKAGES=()   # only for `make bench` (scripts/deps.sh --bench)
NPM_DIRS=()
for f in "$here"/deps.d/*.sh; do [ -f "$f" ] && . "$f"; done
if [ "${1:-}" = "--bench" ]; then APT_PACKAGES+=("${BENCH_APT_PACKAGES[@]}"); fi
apt_install "${APT_PACKAGES[@]}"
# Packages that ship a system service (pgbouncer) must not keep one running:
# it would hold ports the suite and the demo use.
if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/pgbouncer ]; then
	as_root service pgbouncer stop >/dev/null 2>&1 || true
fi
ensure_postgres
command -v go >/dev/null || die "Go is not installed (need Go 1.26: https://go.dev/dl)"
for d in "${NPM_DIRS[@]}"; do
	if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then
		log "npm ci in $d"
		# npm ci needs every optional platform package of the lock file in the
		# registry; when a mirror lacks some (workerd's macOS/Windows builds),
		# fall back to npm install, which resolves them as optional.
		(cd "$d" && { npm ci --no-audit --no-fund --loglevel=error >&2 \
			|| npm install --no-save --no-audit --no-fund --loglevel=error >&2; }) || die "npm install in $d failed"
		touch "$d/node_modules"
	fi
done
# Go modules: download once for every module so that the suite starts warm.
find "$here/.." -name go.mod -not -path '*/node_modules/*' | while read -r m; do
	(cd "$(dirname "$m")" && go mod download >&2) || die "go mod download in $(dirname "$m") failed"
done
