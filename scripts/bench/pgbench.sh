#!/usr/bin/env bash
# pgbench.sh: PostgreSQL wire throughput through bitd's proxy vs direct
# PostgreSQL vs PgBouncer (session mode), all on loopback, in one run.
#
#   TEST_DATABASE_URL=$(scripts/pg-up.sh) scripts/bench/pgbench.sh
#   BENCH_T=5 scripts/bench/pgbench.sh      # shorter runs (default 20 s each)
#   BENCH_ROUNDS=3 ...                      # repeat, rotating the order; best TPS counts
#
# Modes: `pgbench -S -c 8 -j 2 -T $BENCH_T` (select-only) and the default
# TPC-B-like mode with the same clients. Targets (BENCH_PG_TARGETS): direct,
# bouncer (PgBouncer, session mode, TLS off), proxy (bitd, TLS off),
# bouncertls and proxytls (the same two with sslmode=require: what clients
# use in production), kernel (below). Prints TPS, the ratios to direct and
# to PgBouncer with the same TLS setting (goal for the plaintext proxy:
# ≥ 0.8 and ≥ 1.0), and the CPU time of the middle process per transaction.
#
# A fifth target, "kernel" (when run as root), is the floor for any relay:
# bitbench-sockmap (server/cmd/bitbench-sockmap) moves the bytes between the
# client's socket and a TCP connection to PostgreSQL entirely in the kernel
# (BPF sockmap redirect), so no process wakes per message. Its ratio to
# direct is what relaying costs on this machine before any proxy does work.
#
# Needs: bitd (bin/bitd, built when missing), pgbench and psql
# (postgresql-client-15), pgbouncer (Debian package), a superuser URL in
# TEST_DATABASE_URL. Everything started here listens on 127.0.0.1 and is
# stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"

T=${BENCH_T:-20}
CLIENTS=${BENCH_CLIENTS:-8}
JOBS=${BENCH_JOBS:-2}
SCALE=${BENCH_SCALE:-10}
ROUNDS=${BENCH_ROUNDS:-1}
PGBENCH=${PGBENCH:-$PGBIN/pgbench}
PSQL=${PSQL:-$PGBIN/psql}
[ -n "${TEST_DATABASE_URL:-}" ] || die "TEST_DATABASE_URL is not set (TEST_DATABASE_URL=\$(scripts/pg-up.sh) $0)"
command -v pgbouncer >/dev/null || die "pgbouncer is not installed (scripts/deps.sh --bench installs it)"
command -v openssl >/dev/null || die "openssl is not installed (scripts/deps.sh --bench installs it)"
[ -x "$PGBENCH" ] || die "$PGBENCH not found (install postgresql-client-15)"

work=$(mktemp -d /tmp/bitkit-pgbench.XXXXXX)
chmod 0755 "$work"
bitd_pid="" bouncer_pid="" kernel_pid=""
cleanup() {
	[ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null || true
	[ -n "$kernel_pid" ] && kill "$kernel_pid" 2>/dev/null || true
	if [ -n "$bitd_pid" ]; then
		kill -TERM "$bitd_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$bitd_pid" 2>/dev/null || break; sleep 0.2; done
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# --- bitd dev with its proxy ------------------------------------------------
bitd=$root/bin/bitd
if [ ! -x "$bitd" ]; then
	log "building bin/bitd"
	(cd "$root/server" && go build -trimpath -o ../bin/bitd ./cmd/bitd)
fi
# How bitd and PgBouncer reach PostgreSQL (the same way, for a fair
# comparison): BENCH_BACKEND=socket (default when the server has a Unix
# socket directory this user can reach) or tcp.
sockdir=$("$PSQL" -X -At "$TEST_DATABASE_URL" -c 'SHOW unix_socket_directories' 2>/dev/null | cut -d, -f1 | sed 's/^ *//') || sockdir=""
BACKEND=${BENCH_BACKEND:-}
if [ -z "$BACKEND" ]; then
	if [ -n "$sockdir" ] && [ -d "$sockdir" ]; then BACKEND=socket; else BACKEND=tcp; fi
fi
backend_args=()
if [ "$BACKEND" = socket ]; then
	[ -n "$sockdir" ] && [ -d "$sockdir" ] || die "BENCH_BACKEND=socket: the server reports no usable unix_socket_directories"
	backend_args=(--pg-backend "$sockdir")
fi
BITD_DATABASE_URL=$TEST_DATABASE_URL "$bitd" dev --metadata-db "bitkit_bench_$RANDOM$RANDOM" "${backend_args[@]}" \
	--http 127.0.0.1:0 --pg 127.0.0.1:0 --data "$work/bitd" --ephemeral >"$work/bitd.log" 2>&1 &
bitd_pid=$!
for _ in $(seq 450); do
	[ -s "$work/bitd/demo.env" ] && grep -q '^BITKIT_PG_ADDR=' "$work/bitd/demo.env" && break
	kill -0 "$bitd_pid" 2>/dev/null || { cat "$work/bitd.log" >&2; die "bitd exited"; }
	sleep 0.2
done
envval() { sed -n "s/^$1=//p" "$work/bitd/demo.env"; }
endpoint=$(envval BITKIT_ENDPOINT) key=$(envval BITKIT_API_KEY) pgaddr=$(envval BITKIT_PG_ADDR)
[ -n "$pgaddr" ] || die "bitd wrote no BITKIT_PG_ADDR"
proxy_host=${pgaddr%:*} proxy_port=${pgaddr##*:}
created=$(curl -fsS -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"name":"pgbench"}' "$endpoint/v2beta/db/") || die "create database failed"
dbname=$(printf '%s' "$created" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
[ -n "$dbname" ] || die "unexpected create answer: $created"

# --- the real database behind it, reachable directly --------------------------
export PGPASSWORD=$key PGSSLMODE=disable PGCONNECT_TIMEOUT=10
log "pgbench -i -s $SCALE through the proxy into $dbname"
"$PGBENCH" -i -q -s "$SCALE" -h "$proxy_host" -p "$proxy_port" -U bench "$dbname" >"$work/init.log" 2>&1 \
	|| { cat "$work/init.log" >&2; die "pgbench -i failed"; }
realdb=$("$PSQL" -X -At -h "$proxy_host" -p "$proxy_port" -U bench -d "$dbname" -c 'SELECT current_database()')
unset PGPASSWORD
# Superuser URL pieces (postgres://user:pw@host:port/db?...).
rest=${TEST_DATABASE_URL#*://}
creds=${rest%%@*} hostpart=${rest#*@}
su_user=${creds%%:*} su_pw=${creds#*:}
hostport=${hostpart%%/*}
pg_host=${hostport%:*} pg_port=${hostport##*:}

# --- PgBouncer, session mode ----------------------------------------------------
bouncer_host=$pg_host
[ "$BACKEND" = socket ] && bouncer_host=$sockdir
bport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/pgbouncer.ini" <<INI
[databases]
bench = host=$bouncer_host port=$pg_port dbname=$realdb user=$su_user password=$su_pw
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 32
logfile = $work/pgbouncer.log
client_tls_sslmode = allow
client_tls_key_file = $work/bouncer.key
client_tls_cert_file = $work/bouncer.crt
INI
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
	-keyout "$work/bouncer.key" -out "$work/bouncer.crt" >/dev/null 2>&1 || die "openssl could not make PgBouncer's certificate"
chmod 0644 "$work/bouncer.key" "$work/bouncer.crt"
printf '"%s" ""\n' "$su_user" >"$work/userlist.txt"
chmod 0644 "$work/pgbouncer.ini" "$work/userlist.txt"
if [ "$(id -u)" = 0 ]; then
	u=$(pg_user)
	touch "$work/pgbouncer.log" && chown "$u" "$work/pgbouncer.log"
	runuser -u "$u" -- pgbouncer "$work/pgbouncer.ini" >"$work/pgbouncer.out" 2>&1 &
else
	pgbouncer "$work/pgbouncer.ini" >"$work/pgbouncer.out" 2>&1 &
fi
bouncer_pid=$!
for _ in $(seq 50); do
	"$PSQL" -X -At "host=127.0.0.1 port=$bport dbname=bench user=$su_user sslmode=disable" -c 'SELECT 1' >/dev/null 2>&1 && break
	sleep 0.2
done

# --- the in-kernel reference relay (root only) --------------------------------
read -r -a targets <<<"${BENCH_PG_TARGETS:-direct bouncer proxy bouncertls proxytls kernel}"
kernel_port=""
if [[ " ${targets[*]} " == *" kernel "* ]]; then
	if [ "$(id -u)" != 0 ]; then
		log "kernel: skipped (the BPF sockmap reference relay needs root)"
	else
		(cd "$root/server" && go build -trimpath -o "$work/bitbench-sockmap" ./cmd/bitbench-sockmap)
		"$work/bitbench-sockmap" -backend "$pg_host:$pg_port" >"$work/sockmap.out" 2>&1 &
		kernel_pid=$!
		for _ in $(seq 50); do
			kernel_port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/sockmap.out")
			[ -n "$kernel_port" ] && break
			kill -0 "$kernel_pid" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$kernel_port" ] || { log "kernel: skipped ($(tail -1 "$work/sockmap.out"))"; kernel_pid=""; }
	fi
	if [ -z "$kernel_port" ]; then
		t=()
		for x in "${targets[@]}"; do [ "$x" = kernel ] || t+=("$x"); done
		targets=("${t[@]}")
	fi
fi

# --- runs -------------------------------------------------------------------
# cputicks PID: user+system CPU ticks the process has used so far.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)
# run NAME MODE conninfo-args... : prints the TPS.
run() {
	local name=$1 mode=$2
	shift 2
	local args=(-c "$CLIENTS" -j "$JOBS" -T "$T" -n)
	[ "$mode" = select ] && args+=(-S)
	local out
	out=$("$PGBENCH" "${args[@]}" "$@" 2>&1) || { printf '%s\n' "$out" >&2; die "pgbench ($name, $mode) failed"; }
	printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
# target NAME MODE: one pgbench run against target NAME; prints "TPS CPU-µs-per-transaction-of-the-middle-process".
target() {
	local mid="" before after v
	case $1 in
	bouncer | bouncertls) mid=$(pgrep -x pgbouncer -P "$bouncer_pid" || echo "$bouncer_pid") ;;
	proxy | proxytls) mid=$bitd_pid ;;
	esac
	[ -n "$mid" ] && before=$(cputicks "$mid")
	case $1 in
	direct) v=$(PGPASSWORD=$su_pw PGSSLMODE=disable run direct "$2" -h "$pg_host" -p "$pg_port" -U "$su_user" "$realdb") ;;
	bouncer) v=$(PGSSLMODE=disable run pgbouncer "$2" -h 127.0.0.1 -p "$bport" -U "$su_user" bench) ;;
	bouncertls) v=$(PGSSLMODE=require run pgbouncer-tls "$2" -h 127.0.0.1 -p "$bport" -U "$su_user" bench) ;;
	proxy) v=$(PGPASSWORD=$key PGSSLMODE=disable run proxy "$2" -h "$proxy_host" -p "$proxy_port" -U bench "$dbname") ;;
	proxytls) v=$(PGPASSWORD=$key PGSSLMODE=require run proxy-tls "$2" -h "$proxy_host" -p "$proxy_port" -U bench "$dbname") ;;
	kernel) v=$(PGPASSWORD=$su_pw PGSSLMODE=disable run kernel "$2" -h 127.0.0.1 -p "$kernel_port" -U "$su_user" "$realdb") ;;
	esac
	if [ -n "$mid" ]; then
		after=$(cputicks "$mid")
		printf '%s %s\n' "$v" "$(python3 -c "print(f'{($after-$before)*1e6/$HZ/($v*$T):.1f}')")"
	else
		printf '%s -\n' "$v"
	fi
}
# Each round runs every target in a rotated order; the best TPS of each
# target counts (other load on a shared machine only ever lowers TPS). The
# CPU time the middle process (PgBouncer or bitd) used per transaction is
# printed too: unlike TPS it hardly depends on what else the machine runs.
declare -A tps cpu
read -r -a modes <<<"${BENCH_MODES:-select tpcb}"
nt=${#targets[@]}
for round in $(seq "$ROUNDS"); do
	for mode in "${modes[@]}"; do
		log "== round $round, $mode: $CLIENTS clients, $JOBS threads, ${T}s each"
		for i in $(seq 0 $((nt - 1))); do
			name=${targets[$(((i + round - 1) % nt))]}
			read -r v c <<<"$(target "$name" "$mode")"
			log "$(printf '%-9s %12s TPS  %6s µs CPU/transaction in the middle process' "$name" "$v" "$c")"
			if [ -z "${tps[$name,$mode]:-}" ] || python3 -c "import sys; sys.exit(0 if $v > ${tps[$name,$mode]} else 1)"; then
				tps[$name,$mode]=$v
			fi
			if [ "$c" != - ] && { [ -z "${cpu[$name,$mode]:-}" ] || python3 -c "import sys; sys.exit(0 if $c < ${cpu[$name,$mode]} else 1)"; }; then
				cpu[$name,$mode]=$c
			fi
		done
	done
done

ratio() { python3 -c "print(f'{$1/$2:.2f}')" 2>/dev/null || echo -; }
printf '\npgbench through bitd vs direct vs PgBouncer (session mode): -c %s -j %s -T %s, scale %s, best of %s; clients on loopback TCP; bitd and PgBouncer reach PostgreSQL over %s\n' "$CLIENTS" "$JOBS" "$T" "$SCALE" "$ROUNDS" "$BACKEND"
printf '%-7s %-11s %9s %9s %12s %11s\n' mode target TPS ×direct ×PgBouncer "CPU µs/tx"
for mode in "${modes[@]}"; do
	for name in direct bouncer proxy bouncertls proxytls kernel; do
		v=${tps[$name,$mode]:-}
		[ -n "$v" ] || continue
		vs=-
		case $name in
		proxy) vs=$(ratio "$v" "${tps[bouncer,$mode]:-0}") ;;
		proxytls) vs=$(ratio "$v" "${tps[bouncertls,$mode]:-0}") ;;
		esac
		printf '%-7s %-11s %9.0f %8s %11s %10s\n' "$mode" "$name" "$v" "$(ratio "$v" "${tps[direct,$mode]:-0}")" "$vs" "${cpu[$name,$mode]:--}"
	done
done
printf 'goal: proxy ×direct >= 0.80 and ×PgBouncer >= 1.00 (TLS off). ×PgBouncer compares with PgBouncer at the same TLS setting.\n'
printf 'CPU µs/tx: CPU time of the middle process (PgBouncer or bitd) per transaction, best of the rounds.\n'
printf 'kernel: in-kernel relay (BPF sockmap, TCP to PostgreSQL, no process wakes per message): the floor for relaying on this machine.\n'
