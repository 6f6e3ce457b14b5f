// Package fleet runs bitd as a fleet on loopback and tests it as one:
// three bitd replicas on one metadata database, platform databases placed
// on two PostgreSQL clusters (the shared cluster of TEST_DATABASE_URL,
// named "default", and a second one the test starts with scripts/pg-up.sh
// and registers with `bitd admin cluster add`), HAProxy (the Debian
// package) in front of the replicas' HTTP and wire-proxy ports, an
// S3-compatible blob store (gofakes3, in memory, over real HTTP) shared by
// the replicas, and Prometheus (the Debian package) scraping their metrics
// listeners.
//
// `make fleet` runs it: the tests are built only with the fleet tag (`go
// test -tags fleet`), so `go test ./...` in `make test` builds this file
// alone. The layout and the production version of it are in docs/fleet.md.
package fleet
