package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/connbudget"
	"github.com/bitkit-dev/bitkit/server/internal/jobs"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// Connections bitd keeps out of the connection budget for its own work:
// the metadata pool (which river's job queue shares), the admin pool, and
// admin connections made on their own (role repairs, provisioning, the
// LISTEN connections of the access cache and of wire-proxy cancels).
const (
	ownMetadataConns = 16
	ownAdminConns    = 4
	ownAdHocConns    = 6
)

// ownOtherClusterConns is what bitd keeps for itself on a cluster other
// than the default one: its admin pool and admin connections made on their
// own (role repairs, provisioning). The metadata pool and the jobs'
// fairness connections are on the default cluster only.
const ownOtherClusterConns = ownAdminConns + ownAdHocConns

// budgetShares derives the connection budget of the default cluster from
// its settings (budgetSharesOwn with bitd's own connections there).
func budgetShares(maxConns, reserved, cfgMax, cfgPer int) (total, per int, err error) {
	return budgetSharesOwn(maxConns, reserved, ownMetadataConns+ownAdminConns+ownAdHocConns, cfgMax, cfgPer)
}

// budgetSharesOwn derives a cluster's connection budget from its settings:
// max is cfgMax, or max_connections less the connections PostgreSQL
// reserves (superuser_reserved_connections, reserved_connections), bitd's
// own connections there (own) and a margin for operators (5, plus one in
// twenty); the per-account share is cfgPer, or a quarter of max, at least
// 10 (at most max). It fails when nothing is left to derive from.
func budgetSharesOwn(maxConns, reserved, own, cfgMax, cfgPer int) (total, per int, err error) {
	total = cfgMax
	if total == 0 {
		margin := 5 + maxConns/20
		total = maxConns - reserved - own - margin
		if total < 4 {
			return 0, 0, fmt.Errorf("the cluster's max_connections (%d) leaves no room for tenant connections "+
				"(%d are reserved, bitd keeps %d for itself and %d for operators): raise max_connections, "+
				"or set --max-backend-conns", maxConns, reserved, own, margin)
		}
	}
	per = cfgPer
	if per == 0 {
		per = min(max(total/4, 10), total)
	}
	return total, min(per, total), nil
}

// newBudget reads max_connections and the reserved connections of the
// default cluster, builds the connection budget (--max-backend-conns,
// --max-backend-conns-per-account) and logs it. reclaim closes idle pool
// connections (pgpool.Manager.ReleaseIdle). Every other cluster gets its
// own budget when bitd first connects there: --max-backend-conns and its
// share when set, else derived from that cluster's own max_connections
// (clusterBudget).
func newBudget(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger,
	reclaim func(match func(pgDatabase string) bool) int) (*connbudget.Budget, error) {
	var maxConns, superRes, res int
	err := st.DB.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int,
		coalesce(current_setting('reserved_connections', true), '0')::int`).Scan(&maxConns, &superRes, &res)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's max_connections: %w", err)
	}
	// Each running job also holds a metadata connection for its fairness
	// slot (jobs.Config.Workers of them, plus one for the scheduler).
	workers := cfg.JobWorkers
	if workers <= 0 {
		workers = jobs.DefaultWorkers
	}
	reserved := superRes + res + workers + 1
	total, per, err := budgetShares(maxConns, reserved, cfg.MaxBackendConns, cfg.MaxBackendConnsPerAccount)
	if err != nil {
		return nil, err
	}
	if room := maxConns - reserved - ownMetadataConns - ownAdminConns - ownAdHocConns; total > room {
		log.Warn("--max-backend-conns is more than the cluster can serve: tenants may fill max_connections and lock out bitd's own work and other clients; lower it or raise max_connections",
			"max_backend_conns", total, "cluster_max_connections", maxConns, "room", room)
	}
	log.Info("connection budget", "max_backend_conns", total, "per_account", per, "derived", cfg.MaxBackendConns == 0,
		"cluster_max_connections", maxConns, "reserved", reserved, "max_databases_per_account", cfg.MaxDatabasesPerAccount)
	return connbudget.New(connbudget.Config{Max: total, PerAccount: per, Reclaim: reclaim,
		Lookup: st.AccountOfPGDatabase, Cluster: st.PlacementOf,
		Size: func(ctx context.Context, cluster string) (int, int, error) {
			return clusterBudget(ctx, cfg, st, log, cluster)
		}}), nil
}

// clusterBudget is the budget of a cluster other than the default one (see
// newBudget), logged once it is known.
func clusterBudget(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger, cluster string) (total, per int, err error) {
	maxConns, reserved, err := st.ClusterLimits(ctx, cluster)
	if err != nil {
		return 0, 0, err
	}
	total, per, err = budgetSharesOwn(maxConns, reserved, ownOtherClusterConns, cfg.MaxBackendConns, cfg.MaxBackendConnsPerAccount)
	if err != nil {
		log.Error("a cluster's connection budget cannot be derived; its databases use the default cluster's", "cluster", cluster, "err", err)
		return 0, 0, err
	}
	if room := maxConns - reserved - ownOtherClusterConns; total > room {
		log.Warn("--max-backend-conns is more than a cluster can serve: tenants may fill its max_connections; lower it or raise max_connections there",
			"cluster", cluster, "max_backend_conns", total, "cluster_max_connections", maxConns, "room", room)
	}
	log.Info("connection budget", "cluster", cluster, "max_backend_conns", total, "per_account", per, "derived", cfg.MaxBackendConns == 0,
		"cluster_max_connections", maxConns, "reserved", reserved)
	return total, per, nil
}
