#!/usr/bin/env bash
# with-pg.sh CMD...: run CMD with TEST_DATABASE_URL set, starting the private
# PostgreSQL cluster (scripts/pg-up.sh) when TEST_DATABASE_URL is not already set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${TEST_DATABASE_URL:-}" ]; then
	TEST_DATABASE_URL=$("$here/pg-up.sh")
	export TEST_DATABASE_URL
fi
exec "$@"
