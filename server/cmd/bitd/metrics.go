package main

import (
	"context"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/jobs"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/query"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// registerCollectors has met read the pools', the access cache's, the wire
// proxy's and the job queue's own statistics at every scrape.
func registerCollectors(met *metrics.Metrics, pools *pgpool.Manager, acc *access.Access, wire *wireProxy, svc *jobs.Service, st *store.Store) {
	met.Registry().MustRegister(&clusterCollector{st: st, pools: pools})
	// One cluster label per PostgreSQL cluster that holds databases this
	// bitd has pools for ("default": --database-url's).
	met.AddPoolClusters(func() map[string]metrics.PoolStats {
		out := map[string]metrics.PoolStats{}
		for name, s := range pools.StatsByCluster() {
			out[name] = metrics.PoolStats{Pools: s.Pools, InUse: s.InUse, Idle: s.Idle, Max: s.Max, Waiting: s.Waiting,
				WaitsTotal: s.WaitsTotal, WaitSeconds: s.WaitTime.Seconds()}
		}
		return out
	})
	met.AddCache(func() metrics.CacheStats {
		s := acc.CacheStats()
		return metrics.CacheStats{Entries: s.Entries, Hits: s.Hits, Misses: s.Misses, Invalidations: s.Invalidations}
	})
	met.AddWire(wire.stats)
	met.AddJobQueue(svc.QueueCounts)
}

// countRows counts the rows of HTTP queries as they reach the usage
// recorder (summed per database about once a second, off the request path).
type countRows struct {
	next query.UsageRecorder
	met  *metrics.Metrics
}

func (c countRows) AddRowsQueried(ctx context.Context, databaseID string, rows int64) {
	c.met.QueryRows(rows)
	c.next.AddRowsQueried(ctx, databaseID, rows)
}

var (
	clusterUp = prometheus.NewDesc("bitd_cluster_up", "1 when the PostgreSQL cluster answered a ping from this bitd (at most 2 s old, 3 s timeout), 0 when not; one series per registered cluster.", []string{"cluster"}, nil)
	budgetUse = prometheus.NewDesc("bitd_connection_budget", "The connection budget of each cluster this bitd has connected to as tenant roles: slots in_use and max (the cap).", []string{"cluster", "state"}, nil)
)

// clusterCollector reports whether each cluster answers (store.ClustersHealth,
// a ping through the admin pools, shared by scrapes for two seconds) and
// each cluster's connection budget.
type clusterCollector struct {
	st    *store.Store
	pools *pgpool.Manager
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- clusterUp; ch <- budgetUse }

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if hs, err := c.st.ClustersHealth(ctx, 3*time.Second); err == nil {
		for _, h := range hs {
			v := 0.0
			if h.Up {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(clusterUp, prometheus.GaugeValue, v, h.Name)
		}
	}
	if b := c.pools.Budget(); b != nil {
		for name, s := range b.Stats().Clusters {
			ch <- prometheus.MustNewConstMetric(budgetUse, prometheus.GaugeValue, float64(s.InUse), name, "in_use")
			ch <- prometheus.MustNewConstMetric(budgetUse, prometheus.GaugeValue, float64(s.Max), name, "max")
		}
	}
}
