# The fleet tests (make fleet, stress/fleet): HAProxy in front of the bitd
# replicas and Prometheus scraping them, both from Debian. deps.sh stops the
# system services these packages start; the tests run their own.
APT_PACKAGES+=(haproxy prometheus)

# Jaeger (v2: an OpenTelemetry collector with in-memory storage) receives the
# replicas' traces in the fleet. Only `make fleet` needs it, so only
# `scripts/deps.sh --fleet` builds it (FLEET_INSTALLS). Its module has replace
# directives, which `go install module@version` refuses, so it is built in a
# throwaway module that requires exactly this version (Jaeger's own go.mod
# then pins every dependency). Big: about 7 minutes of build on 2 cores the
# first time, a 116 MiB binary in $(go env GOPATH)/bin/jaeger.
JAEGER_VERSION=v1.75.0
FLEET_INSTALLS+=(install_jaeger)
install_jaeger() {
	local bin tmp
	bin="$(go env GOPATH)/bin/jaeger"
	if go version -m "$bin" 2>/dev/null | grep -q "^[[:space:]]mod[[:space:]]github.com/jaegertracing/jaeger[[:space:]]$JAEGER_VERSION[[:space:]]"; then
		return 0
	fi
	log "building Jaeger $JAEGER_VERSION into $bin (several minutes the first time)"
	tmp=$(mktemp -d)
	# go get lists the few hundred modules it adds: kept in a file, shown
	# only when the build fails.
	if ! (
		cd "$tmp" && printf 'module bitkit-fleet-jaeger\n\ngo 1.26.0\n' > go.mod &&
		go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" > get.log 2>&1 &&
		go build -o "$bin" github.com/jaegertracing/jaeger/cmd/jaeger >&2
	); then
		tail -n 30 "$tmp/get.log" >&2 2>/dev/null || true
		rm -rf "$tmp"
		die "building Jaeger $JAEGER_VERSION failed"
	fi
	rm -rf "$tmp"
}
