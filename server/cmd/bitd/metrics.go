package main

import (
	"context"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/jobs"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/query"
)

// registerCollectors has met read the pools', the access cache's, the wire
// proxy's and the job queue's own statistics at every scrape.
func registerCollectors(met *metrics.Metrics, pools *pgpool.Manager, acc *access.Access, wire *wireProxy, svc *jobs.Service) {
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
