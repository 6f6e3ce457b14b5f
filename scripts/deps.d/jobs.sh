# Import/export jobs: psql for the benchmark's `\copy` baseline,
# pgloader for its second comparison.
APT_PACKAGES+=(postgresql-client-15)
BENCH_APT_PACKAGES+=(pgloader)
