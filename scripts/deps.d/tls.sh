# TLS tests: node-postgres (npm pg, pinned in its package.json and lock
# file) verifying the wire proxy's certificate with NODE_EXTRA_CA_CERTS, and
# Pebble, a real ACME server, with its challenge test server for the ACME
# test.
NPM_DIRS+=("$here/../server/cmd/bitd/testdata/nodepg")
GO_TOOLS+=(github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3
	github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3)
