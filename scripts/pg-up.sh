#!/usr/bin/env bash
# pg-up.sh: start a private, throwaway PostgreSQL cluster on loopback and print its URL.
#
#   scripts/pg-up.sh            # prints postgres://bitkit:...@127.0.0.1:55432/postgres?sslmode=disable
#   TEST_DATABASE_URL=$(scripts/pg-up.sh) go test ./...
#
# Idempotent: a cluster that is already running is reused. Installs PostgreSQL 15
# from apt when it is missing. The cluster runs as a non-root user (root's
# processes use "postgres" or a created "bitkit-pg" user), listens only on
# 127.0.0.1 and stores everything under $BITKIT_PG_DIR (default /tmp/bitkit-pg).
# The superuser "bitkit" has a random password kept in $BITKIT_PG_DIR/password.
# Durability settings favour speed (fsync off): it is for development and tests.
# Stop it with scripts/pg-down.sh.
#
# The cluster is locked down like bitd dev's (docs/bitd.md, "Locking the cluster"):
# tenant roles (members of bitkit_tenants) log in only on the Unix socket, whose
# directory only the cluster's OS user and root may enter, and only to their own
# database; TCP refuses them. pg_hba.conf is rewritten at every run and reloaded
# when it changed, so a cluster made by an older pg-up.sh is upgraded too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

dir=${BITKIT_PG_DIR:-/tmp/bitkit-pg}
port=${BITKIT_PG_PORT:-55432}

ensure_postgres
owner=$(pg_user)
data=$dir/data

# lock_down writes pg_hba.conf (bitkit_admins first: pg_hba's +group follows
# memberships and bitd's admin is a member of every tenant role), closes the
# socket directory to other OS users, and reloads a running cluster when
# pg_hba.conf changed. $1 = "running" when the cluster is up.
lock_down() {
	hba=$(mktemp)
	cat >"$hba" <<'HBA'
# Written by scripts/pg-up.sh at every run: tenant roles log in only through bitd.
# See docs/bitd.md, "Locking the cluster: no way in but through bitd".
# TYPE  DATABASE  USER                        ADDRESS        METHOD
local   all       bitkit,+bitkit_admins                      scram-sha-256
host    all       bitkit,+bitkit_admins       127.0.0.1/32   scram-sha-256
host    all       bitkit,+bitkit_admins       ::1/128        scram-sha-256
local   samerole  +bitkit_tenants                            trust
local   all       +bitkit_tenants                            reject
host    all       +bitkit_tenants             all            reject
local   all       all                                        scram-sha-256
host    all       all                         127.0.0.1/32   scram-sha-256
host    all       all                         ::1/128        scram-sha-256
HBA
	changed=0
	if ! cmp -s "$hba" "$data/pg_hba.conf"; then
		cp "$hba" "$data/pg_hba.conf"
		chown "$owner" "$data/pg_hba.conf"
		chmod 0600 "$data/pg_hba.conf"
		changed=1
	fi
	rm -f "$hba"
	# Takes effect at the next start; the directory's mode below at once.
	grep -q '^unix_socket_permissions' "$data/postgresql.conf" || echo "unix_socket_permissions = 0700" >>"$data/postgresql.conf"
	mkdir -p "$dir/sock"
	chown "$owner" "$dir/sock"
	chmod 0700 "$dir/sock"
	if [ "${1:-}" = running ] && [ "$changed" = 1 ]; then
		log "pg_hba.conf locked down: reloading PostgreSQL in $data"
		as_pg_user "$PGBIN/pg_ctl" -D "$data" reload >/dev/null || die "pg_ctl reload failed (log: $dir/log/server.log)"
	fi
}

url() { printf 'postgres://bitkit:%s@127.0.0.1:%s/postgres?sslmode=disable\n' "$(cat "$dir/password")" "$(cat "$dir/port")"; }

if [ -f "$dir/port" ] && as_pg_user "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
	log "PostgreSQL already running in $data"
	lock_down running
	url
	exit 0
fi

mkdir -p "$dir" "$dir/log"
chown "$owner" "$dir/log"
chmod 0755 "$dir"
if [ ! -f "$data/PG_VERSION" ]; then
	rm -rf "$data"
	mkdir -p "$data" "$dir/sock"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/password"
	chmod 0644 "$dir/password"   # readable by the cluster owner for initdb; the dir is private to this machine
	chown -R "$owner" "$data" "$dir/sock"
	cp "$dir/password" "$dir/pwfile" && chown "$owner" "$dir/pwfile"
	log "initdb $data (owner $owner)"
	as_pg_user "$PGBIN/initdb" -D "$data" -U bitkit --pwfile="$dir/pwfile" \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
		|| { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	rm -f "$dir/pwfile"
	cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 400
shared_buffers = 256MB
fsync = off
full_page_writes = off
log_min_messages = warning
log_statement = none
CONF
	echo "$port" >"$dir/port"
fi
lock_down
log "starting PostgreSQL on 127.0.0.1:$(cat "$dir/port")"
as_pg_user "$PGBIN/pg_ctl" -D "$data" -l "$dir/log/server.log" -w -t 60 start >/dev/null \
	|| { tail -n 30 "$dir/log/server.log" >&2; die "pg_ctl start failed (log: $dir/log/server.log)"; }
url
