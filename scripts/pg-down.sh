#!/usr/bin/env bash
# pg-down.sh: stop the private cluster started by pg-up.sh. With --purge, delete its files too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
dir=${BITKIT_PG_DIR:-/tmp/bitkit-pg}
if [ -f "$dir/data/PG_VERSION" ]; then
	as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 && log "stopped PostgreSQL in $dir/data" || log "PostgreSQL in $dir/data was not running"
fi
if [ "${1:-}" = "--purge" ]; then rm -rf "$dir"; log "removed $dir"; fi
