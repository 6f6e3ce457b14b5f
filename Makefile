# bitkit — see README.md. The two commands: `make demo` and `make test`.
#
# Areas add their own targets in mk/*.mk (included below) and extend
# TEST_TARGETS / BENCH_TARGETS / LINT_TARGETS / BUILD_TARGETS.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
# Every Go module of the repo (directories holding a go.mod).
MODULES := $(patsubst %/go.mod,%,$(shell find . -name go.mod -not -path '*/node_modules/*' -not -path './.cache/*' | sort))
GOTESTFLAGS ?= -count=1 -timeout 25m
WITH_PG := scripts/with-pg.sh

TEST_TARGETS := lint test-go
BENCH_TARGETS := bench-go
LINT_TARGETS := lint-go
BUILD_TARGETS := bin/bitd bin/bit

-include mk/*.mk

.PHONY: all build test lint bench demo deps clean pg-up pg-down test-go lint-go bench-go fmt help

## help: this list (every target documented with a `## name: what` line)
help:
	@grep -h -E '^## [a-z][a-z0-9/_.-]*:' $(MAKEFILE_LIST) | sed 's/^## //' | awk -F': ' '{ printf "  make %-18s %s\n", $$1, substr($$0, length($$1) + 3) }'

all: build

## build: bin/bitd and bin/bit (and whatever mk/*.mk adds)
build: $(BUILD_TARGETS)

bin/bitd: FORCE
	cd server && $(GO) build -trimpath -o ../bin/bitd ./cmd/bitd
# The CLI's `bit --version`: the nearest tag and commit (git describe), or
# "dev" outside a git checkout. Override with `make bin/bit BIT_VERSION=v1.2.3`.
BIT_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
bin/bit: FORCE
	cd cmd/bit && $(GO) build -trimpath -ldflags "-X main.version=$(BIT_VERSION)" -o ../../bin/bit .
FORCE:

## deps: install what the suite needs (apt and npm packages, Go modules)
deps:
	scripts/deps.sh

## test: the whole suite, starting a private PostgreSQL itself
test: deps
	@failed=""; for t in $(TEST_TARGETS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed"; exit 1; fi; echo "make test: all of$(foreach t,$(TEST_TARGETS), $(t)) passed"

## test-go: go test in every module (with a private PostgreSQL)
test-go:
	@failed=""; for m in $(MODULES); do echo "== go test $$m"; \
		(cd $$m && $(CURDIR)/$(WITH_PG) $(GO) test $(GOTESTFLAGS) ./...) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "go test failed in:$$failed"; exit 1; fi

## lint: gofmt, go vet, staticcheck, the js/wasm build of core
lint: $(LINT_TARGETS)
STATICCHECK_VERSION := v0.8.2
lint-go:
	@command -v staticcheck >/dev/null 2>&1 || { echo "installing staticcheck $(STATICCHECK_VERSION)"; $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); }
	@out=$$(gofmt -l $$(git ls-files '*.go' ; git ls-files --others --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do echo "== go vet + staticcheck $$m"; (cd $$m && $(GO) vet ./... && staticcheck ./...); done
	GOOS=js GOARCH=wasm $(GO) build ./core/... ./internal/jsonx/...

## bench: every benchmark, as ratios against limits measured in the same run (test-artifacts/bench.log)
# Every target runs even if one fails.
bench:
	scripts/deps.sh --bench
	$(MAKE) --no-print-directory build
	MAKE="$(MAKE)" scripts/bench/all.sh $(BENCH_TARGETS)
bench-go:
	$(WITH_PG) scripts/bench/run.sh

## demo: private PostgreSQL + bitd + a CLI tour; stays up until Ctrl-C (DEMO_ONCE=1 exits)
demo: deps
	$(MAKE) --no-print-directory web
	$(MAKE) --no-print-directory build
	DEMO_ONCE=$(DEMO_ONCE) scripts/demo.sh

## pg-up: a private PostgreSQL for development (its URL on stdout)
pg-up:
	@scripts/pg-up.sh
## pg-down: stop it
pg-down:
	@scripts/pg-down.sh

fmt:
	gofmt -w $$(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go')

clean:
	rm -rf bin .bitd
