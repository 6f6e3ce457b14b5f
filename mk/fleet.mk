# mk/fleet.mk — bitd as a fleet on loopback (stress/fleet, docs/fleet.md):
# three bitd replicas on one metadata database, platform databases placed
# on two PostgreSQL clusters (the shared one of scripts/with-pg.sh and a
# second one the test starts with scripts/pg-up.sh in a fresh
# /tmp/fleet-pg2-* directory on a port of 55560-55569), HAProxy (Debian
# package) in front of their HTTP and wire-proxy ports, blobs on an
# S3-compatible server (gofakes3, in memory, over HTTP), Prometheus (Debian
# package) scraping the replicas' metrics listeners, Jaeger (v2, built from
# the Go module proxy by scripts/deps.sh --fleet, in-memory storage, loopback
# ports 55590-55593) receiving their OpenTelemetry traces. The fleet tests run
# against it (any request on any replica, revoke on all, cancel across
# replicas, placement on both clusters, Prometheus's API, traces in
# Jaeger's API, a stopped cluster, a database moved under a write load,
# SIGKILL during a stream, a wire session and jobs) with the mixed load through HAProxy at 1 and 3
# replicas
# (FLEET_LOAD_S seconds each, default 10). Two to three minutes, most of it
# waiting for the jobs of a killed replica to be rescued, so it runs in
# `make stress`, not in `make test` (where the tests only compile and skip).
#
# Output: test-artifacts/fleet.log (the whole go test -v run),
# test-artifacts/fleet-load.txt (the load figures), and the one-line
# summary, also in test-artifacts/fleet-summary.txt.

FLEET_LOAD_S ?= 10
# Jaeger receives the replicas' traces; scripts/deps.sh --fleet builds it.
JAEGER_VERSION := $(shell sed -n 's/^JAEGER_VERSION=//p' scripts/deps.d/fleet.sh)

.PHONY: fleet

## fleet: 3 bitd replicas + 2 PostgreSQL clusters + HAProxy + S3 + Prometheus + Jaeger on loopback, the fleet tests and the 1 vs 3 replica load; one summary line
fleet:
	@command -v haproxy >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && \
		$(GO) version -m "$$($(GO) env GOPATH)/bin/jaeger" 2>/dev/null | grep -q 'jaeger[[:space:]]$(JAEGER_VERSION)[[:space:]]' || scripts/deps.sh --fleet
	@mkdir -p test-artifacts; rm -f test-artifacts/fleet-summary.txt test-artifacts/fleet-load.txt
	@status=0; pg2=$$(mktemp -d /tmp/fleet-pg2-XXXXXX); \
	(cd stress/fleet && BITKIT_FLEET_LOAD_S=$(FLEET_LOAD_S) BITKIT_FLEET_PG2_DIR=$$pg2 $(CURDIR)/$(WITH_PG) \
		$(GO) test -tags fleet -count=1 -timeout 15m -v -run '^TestFleet$$' . > $(CURDIR)/test-artifacts/fleet.log 2>&1) || status=$$?; \
	pid=$$(head -n1 $$pg2/data/postmaster.pid 2>/dev/null || true); \
	if [ -n "$$pid" ] && grep -qa -- "$$pg2" /proc/$$pid/cmdline 2>/dev/null && kill -INT $$pid 2>/dev/null; then \
		echo "fleet: the test left the second PostgreSQL cluster running (pid $$pid); stopped it"; \
		for i in $$(seq 1 300); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	fi; \
	rm -rf $$pg2; \
	if [ $$status != 0 ]; then grep -E -A3 -- '--- FAIL|^\s+[a-z_]+_test\.go:[0-9]+: ' test-artifacts/fleet.log | grep -v -- '--- PASS' | head -60; fi; \
	[ -s test-artifacts/fleet-load.txt ] && sed 's/^/fleet load: /' test-artifacts/fleet-load.txt; \
	if [ -s test-artifacts/fleet-summary.txt ]; then cat test-artifacts/fleet-summary.txt; \
	else echo "fleet: FAILED before the fleet tests ran; see test-artifacts/fleet.log"; tail -20 test-artifacts/fleet.log; fi; \
	exit $$status
