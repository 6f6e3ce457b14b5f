# mk/dbcreate.mk — creating and deleting platform databases: the stock of
# pre-provisioned databases and the background drop (server/internal/store/stock.go).
#
#   make bench-create   server/cmd/bitbench-create: a bare CREATE DATABASE
#                       (WAL_LOG and FILE_COPY; on the test cluster, and on a
#                       private cluster with fsync on, idle and under a writer)
#                       next to POST /v2beta/db/ on bitd without a stock, with
#                       the default stock and with a stock covering the burst:
#                       p50/p99 at 1 creator and 50 at once, and a second burst of
#                       50 once the default stock has followed demand (about 8 minutes)
#
# The tests (server/internal/store/stock_test.go,
# server/cmd/bitd/e2e_dbstock_test.go) run in `make test-go` with the server module.

BENCH_TARGETS += bench-create

.PHONY: bench-create

bench-create: bin/bitd
	cd server && $(CURDIR)/$(WITH_PG) $(GO) run ./cmd/bitbench-create
