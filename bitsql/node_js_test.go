//go:build js && bitsqlnode

package bitsql_test

import (
	"database/sql"
	"os"
	"testing"

	_ "github.com/bitkit-dev/bitkit/bitsql"
)

// TestNodeSuite runs the suite in js/wasm. It is built only with the
// bitsqlnode tag: TestDriverUnderNode (native) starts bitd, builds this
// test binary with the tag and runs it in Node with BITSQL_TEST_DSN set.
func TestNodeSuite(t *testing.T) {
	dsn := os.Getenv("BITSQL_TEST_DSN")
	if dsn == "" {
		t.Fatal("BITSQL_TEST_DSN is not set: run TestDriverUnderNode (a native test), which starts bitd and runs this test in Node")
	}
	db, err := sql.Open("bitkit", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runSuite(t, db)
}
