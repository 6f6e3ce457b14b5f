package stress

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// TestAttackRevokedKeyAcrossReplicas: a stolen key is revoked through one
// bitd while the thief keeps using it through another replica on the same
// metadata database, which serves principals from its cache. The revoke
// is announced with NOTIFY; the other replica refuses the key, also when
// the thief has first cut that replica's LISTEN connection.
func TestAttackRevokedKeyAcrossReplicas(t *testing.T) {
	t.Parallel()
	tried(t, "a revoked key used through another replica")
	a := start(t, bitdtest.SharedSecret())
	b := start(t, bitdtest.Replica(a))
	alice := newClient(a.Endpoint, a.APIKey)
	db := alice.createDB(t, "replicas"+randSuffix(), true)
	meta := metadataConn(t, a)
	ctx := t.Context()

	// stolen issues a key and uses it through replica b until b caches it.
	stolen := func() *client {
		r := alice.do(t, "POST", "/v2beta/api-key/", nil)
		k := r.str("api_key")
		if r.Status != 200 || k == "" {
			t.Fatalf("create key: %d %s", r.Status, r.Raw)
		}
		remember(k)
		thief := newClient(b.Endpoint, k)
		for range 3 {
			thief.mustQuery(t, db, "SELECT 1")
		}
		return thief
	}
	revoke := func(thief *client) {
		if r := alice.do(t, "DELETE", "/v2beta/api-key/?api_key="+thief.key, nil); r.Status != 200 {
			t.Fatalf("revoke: %d %s", r.Status, r.Raw)
		}
	}

	thief := stolen()
	revoke(thief)
	testwait.Eventually(t, time.Minute, func() error {
		if r := thief.query(t, db, "SELECT 1"); r.Status != 401 {
			return fmt.Errorf("the other replica still serves the revoked key (%d)", r.Status)
		}
		return nil
	})
	record(t, "a key revoked through one replica is used through another replica that has it cached",
		"refused (401) once the revoke's NOTIFY arrives, milliseconds on loopback (docs/bitd.md, \"Access cache and replicas\")")

	app := "bitd access listener " + strconv.Itoa(b.Pid())
	for range 3 {
		thief = stolen()
		var pid int
		testwait.Eventually(t, time.Minute, func() error {
			if err := meta.QueryRow(ctx, `SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if pid == 0 {
				return errors.New("the replica is not listening")
			}
			return nil
		})
		if _, err := meta.Exec(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid); err != nil {
			t.Fatal(err)
		}
		revoke(thief)
		if r := thief.query(t, db, "SELECT 1"); r.Status != 401 {
			t.Fatalf("the replica whose LISTEN connection was cut served the revoked key: %d %s", r.Status, r.Raw)
		}
		alice2 := newClient(b.Endpoint, a.APIKey)
		alice2.mustQuery(t, db, "SELECT 1")
	}
	record(t, "the replica's LISTEN connection is cut (pg_terminate_backend), then a key it has cached is revoked",
		"refused on the very next request: without its listener the replica looks every credential up, and flushes its cache when it listens again")
}
