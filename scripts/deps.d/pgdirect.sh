# Wire proxy and pgdirect: psql/pgbench for the proxy tests and the
# benchmark (pgbench ships in postgresql-15's binaries), PgBouncer for the
# benchmark's comparison, curl to create the benchmark database.
APT_PACKAGES+=(postgresql-client-15 curl)
BENCH_APT_PACKAGES+=(pgbouncer openssl)  # openssl: PgBouncer's TLS certificate in the benchmark
