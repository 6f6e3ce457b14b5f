# mk/pgdirect.mk — the PostgreSQL wire proxy and pgdirect.
#
#   make bench-pgdirect   scripts/bench/pgbench.sh: pgbench -S and TPC-B through
#                         the bitd proxy (TLS off and on) vs direct PostgreSQL vs
#                         PgBouncer in session mode, with ratios
#                         (BENCH_T=5 for shorter runs; default 20 s each)
#
# The tests (server/internal/proxy, pgdirect/) run in `make test-go`: pgdirect
# is its own module and is picked up by the module loop.

BENCH_TARGETS += bench-pgdirect

.PHONY: bench-pgdirect

## bench-pgdirect: pgbench through the wire proxy vs direct PostgreSQL vs PgBouncer
bench-pgdirect: bin/bitd
	$(WITH_PG) scripts/bench/pgbench.sh
