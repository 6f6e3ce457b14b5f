package store

import (
	"errors"
	"strings"
	"testing"
)

// TestChoosePlacement: the active cluster with the fewest live databases
// wins, ties go to default and then to the oldest cluster, draining
// clusters take nothing, and with none active the error says so. The
// policy reads only the metadata, so the clusters here are rows (nothing
// connects to them).
func TestChoosePlacement(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	choose := func() string {
		t.Helper()
		c, err := s.ChoosePlacement(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := choose(); c != DefaultCluster {
		t.Fatalf("one cluster: chose %q", c)
	}
	for _, n := range []string{"zeta", "alpha"} { // zeta is the older
		if _, err := s.DB.Exec(ctx, `INSERT INTO clusters (name, admin_url) VALUES ($1, 'postgres://bitkit@127.0.0.1:1/postgres')`, n); err != nil {
			t.Fatal(err)
		}
	}
	if c := choose(); c != DefaultCluster {
		t.Fatalf("a tie: chose %q, want default", c)
	}
	acct, err := s.DB.Exec(ctx, `INSERT INTO accounts (id, name, kind) VALUES ('a1', 'placer', 'personal')`)
	if err != nil || acct.RowsAffected() != 1 {
		t.Fatal(err)
	}
	addDB := func(name, placement string) {
		t.Helper()
		if _, err := s.DB.Exec(ctx, `INSERT INTO databases (account_id, name, pg_name, placement) VALUES ('a1', $1, 'bk_test_' || $1, $2)`, name, placement); err != nil {
			t.Fatal(err)
		}
	}
	addDB("d1", DefaultCluster)
	if c := choose(); c != "zeta" {
		t.Fatalf("default holds one: chose %q, want the oldest empty cluster zeta", c)
	}
	addDB("d2", "zeta")
	if c := choose(); c != "alpha" {
		t.Fatalf("chose %q, want alpha (the only empty one)", c)
	}
	if err := s.SetClusterState(ctx, "alpha", ClusterDraining); err != nil {
		t.Fatal(err)
	}
	if c := choose(); c != DefaultCluster {
		t.Fatalf("alpha draining, a tie of default and zeta: chose %q", c)
	}
	// A deleted database does not count.
	if _, err := s.DB.Exec(ctx, `UPDATE databases SET deleted_at = now() WHERE name = 'd1'`); err != nil {
		t.Fatal(err)
	}
	if c := choose(); c != DefaultCluster {
		t.Fatalf("default empty again: chose %q", c)
	}
	for _, n := range []string{DefaultCluster, "zeta"} {
		if err := s.SetClusterState(ctx, n, ClusterDraining); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ChoosePlacement(ctx); err == nil || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("every cluster draining: %v, want an error saying so", err)
	}
	if err := s.SetClusterState(ctx, "nosuch", ClusterActive); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetClusterState of a missing cluster: %v", err)
	}
	cs, err := s.ListClusters(ctx)
	if err != nil || len(cs) != 3 || cs[0].Name != DefaultCluster || cs[1].Name != "zeta" || cs[1].Databases != 1 {
		t.Fatalf("ListClusters = %+v, %v", cs, err)
	}
	if pl, err := s.PlacementOf(ctx, "bk_test_d2"); err != nil || pl != "zeta" {
		t.Fatalf("PlacementOf = %q, %v", pl, err)
	}
	if _, err := s.DB.Exec(ctx, `DELETE FROM databases WHERE account_id = 'a1'`); err != nil {
		t.Fatal(err)
	}
}
