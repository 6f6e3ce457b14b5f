# The stress suite. Its fast parts run in `make test` (the stress
# module is one of MODULES; fuzz-short below); `make stress` runs the long
# versions (BITKIT_STRESS=1 and -tags stress: 200 clients for 60 s, SIGKILL during jobs) and
# regenerates docs/reliability.md from the rows the tests recorded, also when
# some test failed (its rows then say FAILED; make still fails), then runs
# `make fleet` (mk/fleet.mk).
.PHONY: stress
## stress: the long stress suite, then make fleet; regenerates docs/reliability.md
stress: build
	mkdir -p test-artifacts
	set -o pipefail; status=0; \
	(cd stress && BITKIT_STRESS=1 BITKIT_RELIABILITY_OUT=$(CURDIR)/test-artifacts/reliability.md \
		../$(WITH_PG) $(GO) test -tags stress -count=1 -timeout 40m -v ./... 2>&1) | tee $(CURDIR)/test-artifacts/stress.log || status=$$?; \
	scripts/reliability-doc.sh test-artifacts/reliability.md > docs/reliability.md; \
	$(MAKE) --no-print-directory fleet || status=$$?; \
	exit $$status

# Every fuzz target of every module for a short burst in `make test`
# (FUZZTIME, default 5s; the HTTP targets in stress/ run FUZZTIME_HTTP inputs,
# default 300x).
.PHONY: fuzz-short
TEST_TARGETS += fuzz-short
## fuzz-short: every fuzz target for a short burst
fuzz-short:
	scripts/fuzz.sh
