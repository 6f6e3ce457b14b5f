# Shared shell helpers for bitkit scripts. Source it; do not run it.
# Everything here logs to stderr so that scripts can print results on stdout.

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_root CMD...: run CMD as root (directly, or through sudo when available).
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"
	elif command -v sudo >/dev/null 2>&1; then sudo "$@"
	else die "need root to run: $* (run as root or install sudo)"; fi
}

# apt_install PKG...: install the Debian packages that are missing.
apt_install() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	log "installing Debian packages:$missing"
	if [ ! -f /tmp/.bitkit-apt-updated ]; then
		as_root apt-get update -qq >&2 || die "apt-get update failed"
		touch /tmp/.bitkit-apt-updated 2>/dev/null || true
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends $missing >&2 \
		|| die "apt-get install$missing failed"
}

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# ensure_postgres: PostgreSQL 15 server binaries present in $PGBIN.
ensure_postgres() {
	[ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/postgres" ] && return 0
	apt_install postgresql-15 postgresql-client-15
	# The Debian package creates and starts a system cluster; we never use it.
	as_root pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL binaries not found in $PGBIN after install"
}

# pg_user: the non-root user that owns private clusters (initdb refuses root).
pg_user() {
	if [ "$(id -u)" != 0 ]; then id -un; return; fi
	if id postgres >/dev/null 2>&1; then echo postgres; return; fi
	useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin bitkit-pg >/dev/null 2>&1 || true
	echo bitkit-pg
}

# as_pg_user CMD...: run CMD as the cluster owner.
as_pg_user() {
	u=$(pg_user)
	if [ "$(id -un)" = "$u" ]; then "$@"; else runuser -u "$u" -- "$@"; fi
}
