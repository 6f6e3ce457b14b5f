# mk/query.mk — bitd's SQL execution engine: POST /v2beta/query,
# NDJSON streaming, POST /v2beta/query/batch (server/internal/query, pgpool, pgjson).
#
#   make bench-query   server/cmd/bitbench against a fresh `bitd dev --ephemeral`:
#                      SELECT 1 and point-query req/s vs direct pgx, latency vs a bare
#                      net/http handler, 1M-row NDJSON stream vs COPY and pgx SELECT,
#                      SELECT 1 and the point query at 8 and 64 clients vs a reference
#                      gateway (net/http + pgxpool, no auth/lookup/reset: req/s, p50,
#                      p99 and CPU µs per request as ratios); an interactive
#                      transaction; SELECT 1 over HTTPS (a second bitd dev --tls;
#                      HTTP/2 and HTTP/1.1) vs plain HTTP as ratios; a 100k-row
#                      JSON and NDJSON answer uncompressed vs gzip vs zstd (bytes
#                      on the wire, bitd CPU per answer; alone: bitbench
#                      --compression-only); then the value encoder's Go benchmarks
#
# The tests (server/internal/{query,pgpool,pgjson}, server/e2e_query_test.go) run in
# `make test-go` with the server module.

BENCH_TARGETS += bench-query

.PHONY: bench-query

## bench-query: the HTTP query path vs direct pgx and a reference gateway
bench-query: bin/bitd
	cd server && $(CURDIR)/$(WITH_PG) $(GO) run ./cmd/bitbench
	cd server && $(GO) test -run '^$$' -bench . -benchtime 200ms ./internal/pgjson/
