#!/usr/bin/env bash
# demo.sh: start bitd in dev mode (with its own private PostgreSQL), run a short
# tour through the real `bit` CLI, and keep everything up until Ctrl-C.
# DEMO_ONCE=1 runs the tour and stops everything it started.
#
# Environment: BITKIT_DEMO_DATA (default .bitd), BITKIT_DEMO_HTTP (127.0.0.1:8080),
# BITKIT_DEMO_PG (127.0.0.1:6432).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
cd "$root"
data=${BITKIT_DEMO_DATA:-$root/.bitd}
http=${BITKIT_DEMO_HTTP:-127.0.0.1:8080}
pg=${BITKIT_DEMO_PG:-127.0.0.1:6432}
[ -x bin/bitd ] && [ -x bin/bit ] || die "bin/bitd and bin/bit missing: run 'make build' (make demo does)"

mkdir -p "$data"
rm -f "$data/demo.env"
log "starting bitd dev (data in $data; it starts its own PostgreSQL the first time, which takes a few seconds)"
bin/bitd dev --data "$data" --http "$http" --pg "$pg" >"$data/bitd.log" 2>&1 &
bitd_pid=$!
stop() {
	if kill -0 "$bitd_pid" 2>/dev/null; then
		log "stopping bitd (pid $bitd_pid)"
		kill -TERM "$bitd_pid" 2>/dev/null || true
		wait "$bitd_pid" 2>/dev/null || true
	fi
}
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 600); do
	[ -s "$data/demo.env" ] && break
	kill -0 "$bitd_pid" 2>/dev/null || { tail -n 40 "$data/bitd.log" >&2; die "bitd exited; log above ($data/bitd.log)"; }
	sleep 0.1
done
[ -s "$data/demo.env" ] || { tail -n 40 "$data/bitd.log" >&2; die "bitd was not ready after 60 s"; }
set -a; . "$data/demo.env"; set +a

bit() { echo "\$ bit $*" >&2; bin/bit "$@"; }
db="$BITKIT_DEMO_USER/tour"
echo
echo "== bitd is up at $BITKIT_ENDPOINT as user $BITKIT_DEMO_USER"
echo "== the tour: create a database, a table, insert, query as rows and as objects"
if bin/bit db info -d "$db" >/dev/null 2>&1; then
	# A deleted name stays reserved for 30 days, so a rerun reuses the database.
	bit query -d "$db" -q "drop table if exists trips"
else
	bit db create -n tour
fi
bit query -d "$db" -q "create table trips (id bigint primary key, city text, km numeric(30,2), at timestamptz default now(), tags text[])"
bit query -d "$db" -q "insert into trips (id, city, km, tags) values (1, 'Lisbon', 12.50, '{coast,sun}'), (2, 'Oslo', 7.25, '{fjord}'), (9223372036854775807, 'Big Int Town', 123456789012345678.99, null)"
bit query -d "$db" -q "select id, city, km, tags from trips order by id"
bit query -d "$db" --objects -q "select city, km from trips where km > \$1 order by km" -p 10
bit query -d "$db" --format table -q "select city, km, tags from trips order by id"
bit db info -d "$db"
echo
echo "== dashboard:  $BITKIT_ENDPOINT/   (sign in with the API key in $data/demo.env)"
echo "== CLI:        set -a; . $data/demo.env; set +a; bin/bit db list"
if [ -n "${BITKIT_PG_ADDR:-}" ]; then
	echo "== psql:       bin/bit psql -d $db   (wire proxy on $BITKIT_PG_ADDR)"
fi
if [ -n "${DEMO_ONCE:-}" ]; then
	echo "== DEMO_ONCE set: stopping"
	exit 0
fi
echo "== running until Ctrl-C"
wait "$bitd_pid"
