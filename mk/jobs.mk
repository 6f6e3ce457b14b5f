# mk/jobs.mk — import and export jobs:
# server/internal/{jobs,ingest,export,blob}.
#
#   make bench-jobs     server/cmd/bitbench-import: a generated 1,000,000-row
#                       mixed-type CSV (~118 MB) imported end to end through the
#                       jobs HTTP API (upload → DONE, with type inference) vs
#                       `psql \copy` into a pre-created typed table and vs
#                       pgloader (when installed); the same table exported to
#                       CSV vs `psql \copy … TO`; peak RSS after 100k and 1M rows.
#                       BENCH_JOBS_ROWS=200000 for a shorter run.
#   make fuzz-jobs      the CSV, JSON and type-inference fuzzers, 30 s each.
#
# The tests run in `make test-go` with the server module.

BENCH_TARGETS += bench-jobs
BENCH_JOBS_ROWS ?= 1000000

.PHONY: bench-jobs fuzz-jobs

## bench-jobs: import and export jobs vs psql \copy and pgloader
bench-jobs:
	cd server && $(CURDIR)/$(WITH_PG) $(GO) run ./cmd/bitbench-import -rows $(BENCH_JOBS_ROWS)

## fuzz-jobs: the CSV, JSON and type-inference fuzzers, 30 s each
fuzz-jobs:
	cd server && for f in FuzzCSV FuzzJSON FuzzInferType; do $(GO) test ./internal/ingest -run '^$$' -fuzz "^$$f\$$" -fuzztime 30s || exit 1; done
