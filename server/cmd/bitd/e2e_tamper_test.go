package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// TestRoleTampering checks that a reader of a public database cannot lock
// everyone else out of it by changing the shared public readers' role's
// password (<db>_public: the same self-healing as every platform role)
// (ALTER ROLE CURRENT_USER PASSWORD …, which PostgreSQL lets every role do
// to itself), over HTTP nor over the wire proxy.
func TestRoleTampering(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	E := s.Endpoint
	want(t, call(t, "POST", E+"/v2beta/db/", s.APIKey, map[string]any{"name": "shared", "is_private": false}), http.StatusCreated, "")
	db := s.User + "/shared"
	want(t, call(t, "POST", E+"/v2beta/query", s.APIKey, map[string]any{"database_name": db,
		"query_string": "CREATE TABLE t AS SELECT 42 AS answer"}), http.StatusOK, "")
	mallory := s.NewUser(t, "mallory", "")
	bob := s.NewUser(t, "bob", "")

	tamper := func(t *testing.T) {
		t.Helper()
		c := wireConn(t, s, mallory, db)
		var role string
		if err := c.QueryRow(t.Context(), "SELECT current_user::text").Scan(&role); err != nil || !strings.HasSuffix(role, store.PublicSuffix) {
			t.Fatalf("a public reader's wire session runs as %q (%v), want the public readers' role", role, err)
		}
		if _, err := c.Exec(t.Context(), "ALTER ROLE CURRENT_USER PASSWORD 'known-to-mallory'"); err != nil {
			t.Fatalf("tamper: %v", err)
		}
		c.Close(t.Context())
	}
	query := map[string]any{"database_name": db, "query_string": "SELECT answer FROM t"}

	t.Run("http", func(t *testing.T) {
		tamper(t)
		// The reader pool has no connection yet: the first one meets the
		// changed password, answers 503, and has the role reset.
		r := call(t, "POST", E+"/v2beta/query", bob, query)
		if r.Status != http.StatusOK {
			want(t, r, http.StatusServiceUnavailable, "database_unavailable")
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			r = call(t, "POST", E+"/v2beta/query", bob, query)
		}
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Raw), "[[42]]") {
			t.Errorf("query answer: %s", r.Raw)
		}
	})
	t.Run("wire", func(t *testing.T) {
		tamper(t)
		c := wireConn(t, s, bob, db)
		var n int
		if err := c.QueryRow(t.Context(), "SELECT answer FROM t").Scan(&n); err != nil || n != 42 {
			t.Fatalf("read after tampering: %d, %v", n, err)
		}
	})
	if logs := s.Logs(); strings.Contains(logs, "known-to-mallory") {
		t.Error("bitd logged the tampered password")
	}
}
