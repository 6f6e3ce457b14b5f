package store

// What bitd does for every cluster other than the default one beyond
// placing databases: the start-up repairs Open runs on the default cluster
// (finish deletes, admin memberships, tenant groups, public readers' roles,
// temp_file_limit), the cluster's connection limits for the connection
// budget, and whether the cluster answers now (bitd admin cluster list,
// the bitd_cluster_up metric).
//
// The repairs run from CheckClusters at start-up. A cluster that cannot be
// reached then is logged, skipped and left pending: the background pass
// (StartBackground, every BackgroundOptions.Interval) tries it again until
// its repairs have run once.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// clusterRepairs is the set of clusters whose start-up repairs are still to
// run (the root Store's).
type clusterRepairs struct {
	mu      sync.Mutex
	pending map[string]bool
}

// rootStore is the default cluster's Store (s itself, or a sibling's root).
func (s *Store) rootStore() *Store {
	if s.root != nil {
		return s.root
	}
	return s
}

// repairCluster runs on cluster name (sib is its Store) what Open runs on
// the default cluster: it finishes drops of deleted databases, makes the
// admin a member of the platform roles, groups tenant roles, adds missing
// public readers' roles and applies temp_file_limit. It returns the first
// error that says the cluster cannot be reached (the caller retries later);
// other failures are logged per database, like on the default cluster.
func (s *Store) repairCluster(ctx context.Context, name string, sib *Store) error {
	live, deleted, err := s.namesOn(ctx, name)
	if err != nil {
		return err
	}
	log := s.log.With("cluster", name)

	// Deleted databases whose database or roles are still there.
	if len(deleted) > 0 {
		rows, err := sib.admin.Query(ctx, `SELECT d.pg_name FROM unnest($6::text[]) AS d(pg_name)
			WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d.pg_name)
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN `+rolesOfD+` OR rolname = d.pg_name OR rolname = d.pg_name || $5)`,
			append(roleSuffixArgs, FrozenSuffix, deleted)...)
		left, err := collectNames(rows, err)
		if err != nil {
			return err
		}
		for _, n := range left {
			if err := sib.dropPhysical(ctx, n); err != nil {
				log.Warn("a deleted database is still there: dropping it failed again", "database", n, "err", err)
				continue
			}
			log.Info("dropped a deleted database left behind by an earlier failed drop", "database", n)
		}
	}
	if len(live) == 0 {
		return nil
	}

	// The admin's memberships in the platform roles (a non-superuser admin
	// needs them to end sessions and drop).
	rows, err := sib.admin.Query(ctx, `SELECT r.rolname FROM unnest($5::text[]) AS d(pg_name)
		JOIN pg_catalog.pg_roles r ON r.rolname IN `+rolesOfD+`
		WHERE NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
		AND NOT pg_has_role(current_user, r.oid, 'MEMBER')`, append(roleSuffixArgs, live)...)
	roles, err := collectNames(rows, err)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if _, err := sib.admin.Exec(ctx, "GRANT "+ident(r)+" TO CURRENT_USER"); err != nil {
			log.Warn("cannot make the admin a member of a platform role: deleting its database fails while the role has sessions", "role", r, "err", err)
		}
	}

	// Tenant roles grouped for pg_hba.conf.
	rows, err = sib.admin.Query(ctx, `SELECT DISTINCT d.pg_name FROM unnest($6::text[]) AS d(pg_name)
		JOIN pg_catalog.pg_roles r ON r.rolname IN `+rolesOfD+`
		WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid AND g.rolname = d.pg_name)
			OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid AND g.rolname = $5)`, append(roleSuffixArgs, TenantsRole, live)...)
	ungrouped, err := collectNames(rows, err)
	if err != nil {
		return err
	}
	grouped := 0
	for _, n := range ungrouped {
		if err := sib.groupTenantRoles(ctx, n); err != nil {
			log.Warn("a platform database's roles are not grouped: a locked-down pg_hba.conf does not refuse them", "database", n, "err", err)
			continue
		}
		grouped++
	}
	if grouped > 0 {
		log.Info("platform roles grouped for pg_hba.conf ("+TenantsRole+", samerole)", "databases", grouped)
	}

	// Public readers' roles.
	if len(s.secret) >= 32 {
		rows, err = sib.admin.Query(ctx, `SELECT d.pg_name FROM unnest($2::text[]) AS d(pg_name)
			WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d.pg_name)
			AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = d.pg_name || $1)`, PublicSuffix, live)
		missing, err := collectNames(rows, err)
		if err != nil {
			return err
		}
		added := 0
		for _, n := range missing {
			if err := sib.addPublicRole(ctx, n); err != nil {
				log.Warn("a platform database has no public readers' role yet (its public readers are refused); the next start tries again",
					"database", n, "err", err)
				_, _ = sib.admin.Exec(context.WithoutCancel(ctx), "DROP ROLE IF EXISTS "+ident(n+PublicSuffix))
				continue
			}
			added++
		}
		if added > 0 {
			log.Info("public readers' roles added to existing platform databases", "databases", added)
		}
	}

	// temp_file_limit (newSibling found whether the admin may set it).
	if sib.tempLimit != "" && sib.tempLimitOK {
		var want any = sib.tempLimit
		if sib.tempLimit == "-1" {
			want = nil
		}
		rows, err = sib.admin.Query(ctx, `SELECT d.pg_name FROM unnest($2::text[]) AS d(pg_name)
			JOIN pg_catalog.pg_database pd ON pd.datname = d.pg_name
			LEFT JOIN pg_catalog.pg_db_role_setting rs ON rs.setdatabase = pd.oid AND rs.setrole = 0
			WHERE (SELECT substr(c, length('temp_file_limit=') + 1) FROM unnest(rs.setconfig) c
				WHERE c LIKE 'temp\_file\_limit=%' LIMIT 1) IS DISTINCT FROM $1::text`, want, live)
		differ, err := collectNames(rows, err)
		if err != nil {
			return err
		}
		applied := 0
		for _, n := range differ {
			_, err := sib.admin.Exec(ctx, sib.tempLimitStatement(n))
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "3D000" { // dropped meanwhile
				continue
			}
			if err != nil {
				log.Warn("temp_file_limit not applied to a platform database", "database", n, "err", err)
				continue
			}
			applied++
		}
		if applied > 0 {
			log.Info("temp_file_limit applied to platform databases", "temp_file_limit", sib.tempLimit, "databases", applied)
		}
	}
	return nil
}

// namesOn lists the PostgreSQL names of the live and of the deleted
// databases the metadata store places on cluster name.
func (s *Store) namesOn(ctx context.Context, name string) (live, deleted []string, err error) {
	rows, err := s.DB.Query(ctx, `SELECT pg_name, deleted_at IS NOT NULL FROM databases WHERE placement = $1 ORDER BY pg_name`, name)
	if err != nil {
		return nil, nil, fmt.Errorf("list the databases of cluster %q: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var del bool
		if err := rows.Scan(&n, &del); err != nil {
			return nil, nil, err
		}
		if del {
			deleted = append(deleted, n)
		} else {
			live = append(live, n)
		}
	}
	return live, deleted, rows.Err()
}

func collectNames(rows pgx.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// checkCluster sets up cluster name's group roles, probes its lock-down and
// runs its repairs; on failure the cluster stays pending.
func (s *Store) checkCluster(ctx context.Context, name string) error {
	sib, err := s.on(ctx, name)
	if err == nil {
		err = sib.ensureGroupRoles(ctx)
	}
	if err == nil {
		sib.CheckLockdown(ctx)
		err = s.repairCluster(ctx, name, sib)
	}
	r := &s.rootStore().repairs
	r.mu.Lock()
	if r.pending == nil {
		r.pending = map[string]bool{}
	}
	if err != nil {
		r.pending[name] = true
	} else {
		delete(r.pending, name)
	}
	r.mu.Unlock()
	return err
}

// repairPendingClusters retries the start-up repairs of the clusters that
// could not be reached before (see CheckClusters).
func (s *Store) repairPendingClusters(ctx context.Context) {
	r := &s.rootStore().repairs
	r.mu.Lock()
	var names []string
	for n := range r.pending {
		names = append(names, n)
	}
	r.mu.Unlock()
	for _, n := range names {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := s.checkCluster(cctx, n)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("a PostgreSQL cluster is still unreachable; its start-up repairs wait", "cluster", n, "err", causeOf(err))
			}
			continue
		}
		s.log.Info("a PostgreSQL cluster that was unreachable answers again: its start-up repairs ran", "cluster", n)
	}
}

// ClusterLimits reads max_connections and the connections PostgreSQL
// reserves (superuser_reserved_connections + reserved_connections) on
// cluster name (DefaultCluster: bitd's own).
func (s *Store) ClusterLimits(ctx context.Context, name string) (maxConns, reserved int, err error) {
	sib, err := s.on(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	var superRes, res int
	err = sib.admin.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int,
		coalesce(current_setting('reserved_connections', true), '0')::int`).Scan(&maxConns, &superRes, &res)
	if err != nil {
		return 0, 0, &ClusterUnavailableError{Cluster: name, Err: err}
	}
	return maxConns, superRes + res, nil
}

// ClusterHealth is whether a cluster answered a ping.
type ClusterHealth struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Cause says why it did not answer ("" when up).
	Cause string `json:"cause,omitempty"`
}

// healthCache keeps the last ClustersHealth answer of a root Store.
type healthCache struct {
	mu   sync.Mutex
	at   time.Time
	last []ClusterHealth
}

// healthFresh is how long a ClustersHealth answer is reused.
const healthFresh = 2 * time.Second

// ClustersHealth pings every cluster (the default one included) through
// bitd's admin connection to it, all at once, each within timeout, and
// returns whether each answered, in ListClusters' order. Answers are
// reused for two seconds (scrapes by several clients cost one round).
func (s *Store) ClustersHealth(ctx context.Context, timeout time.Duration) ([]ClusterHealth, error) {
	root := s.rootStore()
	hc := &root.health
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.last != nil && time.Since(hc.at) < healthFresh {
		return append([]ClusterHealth(nil), hc.last...), nil
	}
	rows, err := root.DB.Query(ctx, `SELECT name FROM clusters ORDER BY name <> 'default', created_at, name`)
	names, err := collectNames(rows, err)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	out := make([]ClusterHealth, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = ClusterHealth{Name: n, Up: true}
			sib, err := root.on(pctx, n)
			if err == nil {
				err = sib.admin.Ping(pctx)
			}
			if err != nil {
				out[i] = ClusterHealth{Name: n, Cause: causeOf(err)}
			}
		})
	}
	wg.Wait()
	hc.at, hc.last = time.Now(), out
	return append([]ClusterHealth(nil), out...), nil
}
