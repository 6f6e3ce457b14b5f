# Issue 9: the stress suite. Its fast parts run in `make test` (the stress
# module is one of MODULES); `make stress` runs the long versions and
# regenerates docs/reliability.md.
.PHONY: stress
stress: build
	cd stress && BITKIT_STRESS=1 BITKIT_RELIABILITY_OUT=$(CURDIR)/test-artifacts/reliability.md \
		../$(WITH_PG) $(GO) test -count=1 -timeout 30m -v ./... 2>&1 | tee $(CURDIR)/test-artifacts/stress.log
	scripts/reliability-doc.sh test-artifacts/reliability.md > docs/reliability.md
