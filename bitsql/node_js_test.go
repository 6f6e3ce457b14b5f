//go:build js

package bitsql_test

import (
	"database/sql"
	"os"
	"testing"

	_ "github.com/bitkit-dev/bitkit/bitsql"
)

// TestNodeSuite runs the suite in js/wasm; TestDriverUnderNode (native)
// starts bitd and runs this binary in Node with BITSQL_TEST_DSN set.
func TestNodeSuite(t *testing.T) {
	dsn := os.Getenv("BITSQL_TEST_DSN")
	if dsn == "" {
		t.Skip("BITSQL_TEST_DSN is not set: TestDriverUnderNode (a native test) runs this test in Node against a real bitd")
	}
	db, err := sql.Open("bitkit", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runSuite(t, db)
}
