package pgpool_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
)

// placer is a pgpool.Placer whose answers the test sets.
type placer struct {
	mu        sync.Mutex
	placement map[string]string // pgDatabase → cluster
	urls      map[string]string // cluster → admin URL
	lookups   int
}

func (p *placer) PlacementOf(_ context.Context, db string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookups++
	if c, ok := p.placement[db]; ok {
		return c, nil
	}
	return pgpool.DefaultCluster, nil
}

func (p *placer) ClusterConnString(_ context.Context, name string) (string, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.urls[name]
	if !ok {
		return "", "", fmt.Errorf("no cluster %q", name)
	}
	return u, "", nil
}

func (p *placer) place(db, cluster string) {
	p.mu.Lock()
	p.placement[db] = cluster
	p.mu.Unlock()
}

// TestClusterPlacement: with Config.Clusters, a pool is made on the
// cluster the placer names (here the same server under another name, so
// no second cluster is needed), PoolOn replaces a pool made for another
// cluster (a moved database), StatsByCluster labels pools by cluster, and
// a cluster that cannot be reached fails the connection with a
// *pgaddr.ClusterUnavailableError naming it.
func TestClusterPlacement(t *testing.T) {
	d := pgtest.New(t)
	ctx := t.Context()
	// A closed port on loopback: a cluster that is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := ln.Addr().String()
	ln.Close()
	down, _ := url.Parse(d.ClusterURL)
	down.Host = downAddr
	pl := &placer{placement: map[string]string{}, urls: map[string]string{"other": d.ClusterURL, "down": down.String()}}
	m := pgpool.New(pgpool.Config{ConnString: d.ClusterURL, TenantAddr: d.TenantAddr.String(), Secret: d.Secret, Clusters: pl})
	defer m.Close()

	pl.place(d.Name, "other")
	p1, err := m.Pool(ctx, d.Name, d.Owner)
	if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := p1.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query on the placed pool: %d, %v", one, err)
	}
	st := m.StatsByCluster()
	if st["other"].Pools != 1 || st[pgpool.DefaultCluster].Pools != 0 {
		t.Fatalf("StatsByCluster = %+v, want one pool on other", st)
	}
	if got, err := m.TenantAddrOf(ctx, "other"); err != nil || got == "" {
		t.Fatalf("TenantAddrOf(other) = %q, %v", got, err)
	}

	// Same cluster: the same pool. Another cluster (the database moved):
	// a new pool, and the old one is gone.
	if p, err := m.PoolOn(ctx, "other", d.Name, d.Owner); err != nil || p != p1 {
		t.Fatalf("PoolOn on the same cluster returned another pool (%v)", err)
	}
	p2, err := m.PoolOn(ctx, pgpool.DefaultCluster, d.Name, d.Owner)
	if err != nil || p2 == p1 {
		t.Fatalf("PoolOn after a move returned the old pool (%v)", err)
	}
	if err := p2.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	st = m.StatsByCluster()
	if st["other"].Pools != 0 || st[pgpool.DefaultCluster].Pools != 1 {
		t.Fatalf("StatsByCluster after the move = %+v, want one pool on default", st)
	}
	if tot := m.Stats(); tot.Pools != 1 {
		t.Fatalf("Stats().Pools = %d, want 1", tot.Pools)
	}

	// Pool (no cluster given) asks the placer every time: a move seen by
	// another replica's metadata is followed.
	pl.place(d.Name, "other")
	before := pl.lookups
	p3, err := m.Pool(ctx, d.Name, d.Owner)
	if err != nil || p3 == p2 || pl.lookups != before+1 {
		t.Fatalf("Pool after the placement changed: new pool %v, lookups %d→%d, %v", p3 != p2, before, pl.lookups, err)
	}

	// A cluster that is down: a clear error naming it.
	pl.place(d.Name, "down")
	_, err = m.Pool(ctx, d.Name, d.Owner)
	var ce *pgaddr.ClusterUnavailableError
	if !errors.As(err, &ce) || ce.Cluster != "down" || ce.ErrorCode() != "cluster_unavailable" || ce.HTTPStatus() != 503 {
		t.Fatalf("Pool on a cluster that is down: %v, want a *pgaddr.ClusterUnavailableError naming it", err)
	}
}
