# Issue 9: the stress suite. Its fast parts run in `make test` (the stress
# module is one of MODULES); `make stress` runs the long versions and
# regenerates docs/reliability.md.
.PHONY: stress
stress: build
	set -o pipefail; mkdir -p test-artifacts; cd stress && BITKIT_STRESS=1 BITKIT_RELIABILITY_OUT=$(CURDIR)/test-artifacts/reliability.md \
		../$(WITH_PG) $(GO) test -count=1 -timeout 30m -v ./... 2>&1 | tee $(CURDIR)/test-artifacts/stress.log
	scripts/reliability-doc.sh test-artifacts/reliability.md > docs/reliability.md

# Every fuzz target for a short burst (FUZZTIME, default 5s) in `make test`.
.PHONY: fuzz-short
TEST_TARGETS += fuzz-short
fuzz-short:
	scripts/fuzz.sh
