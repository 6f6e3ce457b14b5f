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
GO_TOOLS=()             # module/path/cmd/NAME@vX.Y.Z, installed into $(go env GOPATH)/bin
FLEET_INSTALLS=()       # functions run only for `make fleet` (scripts/deps.sh --fleet)
for f in "$here"/deps.d/*.sh; do [ -f "$f" ] && . "$f"; done
if [ "${1:-}" = "--bench" ]; then APT_PACKAGES+=("${BENCH_APT_PACKAGES[@]}"); fi
apt_install "${APT_PACKAGES[@]}"
# Packages that ship a system service (pgbouncer, prometheus, haproxy) must
# not keep one running: it would hold ports the suite and the demo use (the
# fleet tests run their own HAProxy and Prometheus).
for svc in pgbouncer prometheus haproxy; do
	if command -v service >/dev/null 2>&1 && [ -x "/etc/init.d/$svc" ]; then
		as_root service "$svc" stop >/dev/null 2>&1 || true
	fi
done
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
# Go tools the tests run, pinned; reinstalled only when the version differs.
for t in "${GO_TOOLS[@]}"; do
	bin="$(go env GOPATH)/bin/$(basename "${t%@*}")"
	if ! go version -m "$bin" 2>/dev/null | grep -q "[[:space:]]${t##*@}[[:space:]]"; then
		log "go install $t"
		go install "$t" >&2 || die "go install $t failed"
	fi
done
if [ "${1:-}" = "--fleet" ]; then
	for f in "${FLEET_INSTALLS[@]}"; do "$f"; done
fi
