// Package connbudget is bitd's connection budget: how many backend
// connections to each PostgreSQL cluster bitd holds, in total and per
// account, across the HTTP pools (pgpool), the wire proxy's sessions and
// the jobs.
//
// Every backend connection takes a slot of the budget of the cluster that
// holds its database (Config.Cluster) before it is opened and gives it
// back when it is closed. A slot is granted when
//   - the account (the owner of the platform database) holds fewer than
//     the cluster's PerAccount slots there, and
//   - bitd holds fewer than the cluster's Max slots there in total.
//
// Each cluster has its own Max and PerAccount: the default cluster's are
// Config.Max and Config.PerAccount, another cluster's come from
// Config.Size when bitd first connects to it. A full cluster refuses only
// the connections to its own databases.
//
// PerAccount is both each account's share and its cap: an account can never
// take more than its share, so one tenant, however many databases or
// clients it uses, leaves Max-PerAccount slots to the others. When a slot
// is refused, Acquire asks Config.Reclaim to close idle pool connections
// (the account's own when its share is the limit, every account's when
// the total is), and waits up to Wait for a slot to be freed
// before it fails with an *Error. The same happens, without waiting, when
// the budget is nine tenths full, for the accounts holding at least half
// their share, so that idle pool connections do not sit on slots while
// others need them.
//
// A Budget is safe for concurrent use.
package connbudget

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultWait is how long Acquire waits for a slot when Config.Wait is 0.
const DefaultWait = 2 * time.Second

// DefaultCluster names the cluster of Config.Max and Config.PerAccount
// (Config.Cluster answers it, or "", for databases there).
const DefaultCluster = "default"

// sizeRetry is how long a cluster whose size could not be read keeps the
// default cluster's limits before Config.Size is asked again.
const sizeRetry = 10 * time.Second

// placementTTL is how long the cluster of a database is remembered: a
// database can move to another cluster, and for up to this long after a
// move its new connections may count on the old cluster's budget.
const placementTTL = time.Minute

// Config configures a Budget.
type Config struct {
	// Max is the cap on backend connections to the default cluster in
	// total; it must be positive.
	Max int
	// PerAccount is the share (and cap) of each account there; 0 means Max.
	PerAccount int
	// Cluster returns the cluster holding a PostgreSQL database
	// (DefaultCluster or "" for the default one). nil: every database is
	// on the default cluster. When it fails, the database counts on the
	// default cluster (not remembered: the next call asks again).
	Cluster func(ctx context.Context, pgDatabase string) (cluster string, err error)
	// Size returns the cap and the per-account share (0: a quarter of the
	// cap, at least 10) of a cluster other than the default one. It is
	// called when bitd first connects there; until it succeeds the cluster
	// has the default cluster's limits and it is asked again after ten
	// seconds. nil: every cluster has the default cluster's limits.
	Size func(ctx context.Context, cluster string) (max, perAccount int, err error)
	// Wait is how long Acquire waits for a slot to be freed before it
	// refuses; 0 means DefaultWait, negative means no wait.
	Wait time.Duration
	// Lookup returns the account owning a PostgreSQL database. Results are
	// cached (a database never changes account). When it is nil or fails,
	// the database counts as its own account.
	Lookup func(ctx context.Context, pgDatabase string) (account string, err error)
	// Reclaim closes the idle pool connections of the databases for which
	// match returns true and returns how many it closed (their slots are
	// released as they close). It is called on its own goroutine, one call
	// at a time, never with the Budget's lock held. nil means nothing is
	// reclaimed.
	Reclaim func(match func(pgDatabase string) bool) int
}

// Budget counts backend connections. Create it with New.
type Budget struct {
	cfg Config

	mu      sync.Mutex
	owner   map[string]string   // pgDatabase → account (cache of Lookup)
	place   map[string]placeAt  // pgDatabase → cluster (cache of Cluster)
	parts   map[string]*cluster // the budgets of the clusters met so far
	reaping bool                // a Reclaim is running
}

type placeAt struct {
	cluster string
	at      time.Time
}

// cluster is the budget of one cluster.
type cluster struct {
	name     string
	max, per int
	sized    bool      // max and per are the cluster's own (Config.Size answered)
	sizedAt  time.Time // when Config.Size was last asked
	total    int
	accounts map[string]int
	freed    chan struct{} // closed and replaced when a slot is released
	peak     int
}

// Error is the refusal of a slot. Its message is meant for the tenant: it
// names the limit and what to do.
type Error struct {
	// Account is true when the account's share is the limit, false when
	// bitd's total on the cluster is.
	Account bool
	// Cluster is the cluster whose budget refused.
	Cluster string
	// Readers is true when the limit is the readers' share of the owning
	// account (see AcquireReader).
	Readers bool
	InUse   int // slots in use (the account's, or bitd's total)
	Limit   int // the limit that refused
}

func (e *Error) Error() string {
	if e.Readers {
		return fmt.Sprintf("too many connections for the readers of this database's account: they have %d of %d "+
			"database connections in use (public readers and READER collaborators and service accounts share them); "+
			"close idle connections or lower your clients' pool size or concurrency, then retry", e.InUse, e.Limit)
	}
	if e.Account {
		return fmt.Sprintf("too many connections for this account: it has %d of %d database connections in use "+
			"(HTTP queries, wire sessions and jobs of all its databases count together); close idle connections or "+
			"lower your clients' pool size or concurrency, then retry", e.InUse, e.Limit)
	}
	if e.Cluster != "" && e.Cluster != DefaultCluster {
		return fmt.Sprintf("too many connections: all %d connections this server makes to the PostgreSQL cluster holding this database (%s) are in use; retry shortly", e.Limit, e.Cluster)
	}
	return fmt.Sprintf("too many connections: all %d database connections of this server are in use; retry shortly", e.Limit)
}

// SQLState is the PostgreSQL error code a wire client gets (too_many_connections).
func (e *Error) SQLState() string { return "53300" }

// HTTPStatus is the status of the HTTP answer: 429 when the account's
// share is the limit (only that account is refused), 503 when bitd's total
// is.
func (e *Error) HTTPStatus() int {
	if e.Account {
		return 429
	}
	return 503
}

// ErrorCode is the code of the HTTP answer.
func (e *Error) ErrorCode() string { return "too_many_connections" }

// IsOver reports whether err is (or wraps) a refusal by a Budget.
func IsOver(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// New returns a Budget. It panics if cfg.Max is not positive.
func New(cfg Config) *Budget {
	if cfg.Max <= 0 {
		panic("connbudget: Max must be positive")
	}
	if cfg.PerAccount <= 0 || cfg.PerAccount > cfg.Max {
		cfg.PerAccount = cfg.Max
	}
	if cfg.Wait == 0 {
		cfg.Wait = DefaultWait
	}
	b := &Budget{cfg: cfg, owner: map[string]string{}, place: map[string]placeAt{}, parts: map[string]*cluster{}}
	b.parts[DefaultCluster] = &cluster{name: DefaultCluster, max: cfg.Max, per: cfg.PerAccount, sized: true,
		accounts: map[string]int{}, freed: make(chan struct{})}
	return b
}

// Max returns the default cluster's total cap.
func (b *Budget) Max() int { return b.cfg.Max }

// PerAccount returns each account's share of the default cluster.
func (b *Budget) PerAccount() int { return b.cfg.PerAccount }

// Limits returns the cap and the per-account share of a cluster, and
// whether they are its own (false: the default cluster's, until
// Config.Size answers).
func (b *Budget) Limits(clusterName string) (max, perAccount int, own bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.parts[clusterKey(clusterName)]
	if c == nil {
		return b.cfg.Max, b.cfg.PerAccount, clusterKey(clusterName) == DefaultCluster
	}
	return c.max, c.per, c.sized
}

func clusterKey(name string) string {
	if name == "" {
		return DefaultCluster
	}
	return name
}

// highWater is the total above which idle connections are reclaimed
// proactively: nine tenths of the cluster's Max, and at least one slot
// below it.
func (c *cluster) highWater() int { return min(c.max*9/10, c.max-1) }

// clusterOf returns the cluster holding pgDatabase (see Config.Cluster).
func (b *Budget) clusterOf(ctx context.Context, pgDatabase string) string {
	if b.cfg.Cluster == nil {
		return DefaultCluster
	}
	b.mu.Lock()
	p, ok := b.place[pgDatabase]
	b.mu.Unlock()
	if ok && time.Since(p.at) < placementTTL {
		return p.cluster
	}
	name, err := b.cfg.Cluster(ctx, pgDatabase)
	if err != nil {
		return DefaultCluster
	}
	name = clusterKey(name)
	b.mu.Lock()
	b.place[pgDatabase] = placeAt{name, time.Now()}
	b.mu.Unlock()
	return name
}

// part returns the budget of cluster name, creating it (and asking
// Config.Size for its limits) when needed.
func (b *Budget) part(ctx context.Context, name string) *cluster {
	b.mu.Lock()
	c := b.parts[name]
	if c == nil {
		c = &cluster{name: name, max: b.cfg.Max, per: b.cfg.PerAccount, accounts: map[string]int{}, freed: make(chan struct{})}
		b.parts[name] = c
	}
	ask := !c.sized && b.cfg.Size != nil && (c.sizedAt.IsZero() || time.Since(c.sizedAt) >= sizeRetry)
	if ask {
		c.sizedAt = time.Now() // one asker at a time
	}
	b.mu.Unlock()
	if !ask {
		return c
	}
	total, per, err := b.cfg.Size(ctx, name)
	if err != nil || total <= 0 {
		return c
	}
	if per <= 0 {
		per = min(max(total/4, 10), total)
	}
	b.mu.Lock()
	c.max, c.per, c.sized = total, min(per, total), true
	b.mu.Unlock()
	return c
}

// Account returns the account owning pgDatabase (see Config.Lookup).
func (b *Budget) Account(ctx context.Context, pgDatabase string) string {
	b.mu.Lock()
	a, ok := b.owner[pgDatabase]
	b.mu.Unlock()
	if ok {
		return a
	}
	if b.cfg.Lookup == nil {
		return "db:" + pgDatabase
	}
	a, err := b.cfg.Lookup(ctx, pgDatabase)
	if err != nil || a == "" {
		return "db:" + pgDatabase // not cached: the next call asks again
	}
	b.mu.Lock()
	b.owner[pgDatabase] = a
	b.mu.Unlock()
	return a
}

// readersOf is the bucket of the reader-role connections to an account's
// databases: readers (public readers, READER collaborators and service
// accounts) share half the account's share, apart from it, so a reader of
// a public database can never use up its owner's connections.
func readersOf(account string) string { return account + " readers" }

func isReaders(bucket string) bool { return strings.HasSuffix(bucket, " readers") }

// limitOf is the cap of a bucket: the account share, or half of it (at
// least one) for the readers of an account's databases.
func (c *cluster) limitOf(bucket string) int {
	if isReaders(bucket) {
		return max(1, c.per/2)
	}
	return c.per
}

// AcquireReader is Acquire for a connection as a database's reader role:
// it counts against the readers' bucket of the owning account, not the
// account's own share.
func (b *Budget) AcquireReader(ctx context.Context, pgDatabase string) (release func(), err error) {
	return b.acquire(ctx, b.part(ctx, b.clusterOf(ctx, pgDatabase)), readersOf(b.Account(ctx, pgDatabase)))
}

// Acquire takes a slot for a connection to pgDatabase. It returns the
// function that gives the slot back (call it exactly once, when the
// connection is closed; later calls do nothing), or an *Error when the
// account's share or the total stays full for Config.Wait, or ctx's error.
func (b *Budget) Acquire(ctx context.Context, pgDatabase string) (release func(), err error) {
	return b.acquire(ctx, b.part(ctx, b.clusterOf(ctx, pgDatabase)), b.Account(ctx, pgDatabase))
}

// AcquireFor is Acquire for a known account, on the default cluster.
func (b *Budget) AcquireFor(ctx context.Context, account string) (release func(), err error) {
	return b.acquire(ctx, b.part(ctx, DefaultCluster), account)
}

func (b *Budget) acquire(ctx context.Context, c *cluster, account string) (release func(), err error) {
	var deadline <-chan time.Time
	for {
		b.mu.Lock()
		refusal := b.tryLocked(c, account)
		if refusal == nil {
			reap := c.total >= c.highWater()
			b.mu.Unlock()
			if reap {
				b.reclaim(c.name, func(a string) bool { return b.heavy(c, a) })
			}
			return b.releaser(c, account), nil
		}
		freed := c.freed
		b.mu.Unlock()
		if refusal.Account {
			b.reclaim(c.name, func(a string) bool { return a == account })
		} else {
			b.reclaim(c.name, nil)
		}
		if b.cfg.Wait < 0 {
			return nil, refusal
		}
		if deadline == nil {
			t := time.NewTimer(b.cfg.Wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-freed:
		case <-deadline:
			b.mu.Lock()
			refusal = b.tryLocked(c, account)
			b.mu.Unlock()
			if refusal == nil {
				return b.releaser(c, account), nil
			}
			return nil, refusal
		case <-ctx.Done():
			return nil, fmt.Errorf("connbudget: waiting for a connection slot: %w", ctx.Err())
		}
	}
}

// heavy reports whether account holds at least half its share of c: the
// accounts whose idle connections a nearly full budget closes first.
func (b *Budget) heavy(c *cluster, account string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return 2*c.accounts[account] >= c.limitOf(account)
}

// tryLocked takes a slot of c for account, or returns why not.
func (b *Budget) tryLocked(c *cluster, account string) *Error {
	if n, limit := c.accounts[account], c.limitOf(account); n >= limit {
		return &Error{Account: true, Readers: isReaders(account), Cluster: c.name, InUse: n, Limit: limit}
	}
	if c.total >= c.max {
		return &Error{Cluster: c.name, InUse: c.total, Limit: c.max}
	}
	c.total++
	c.accounts[account]++
	c.peak = max(c.peak, c.total)
	return nil
}

func (b *Budget) releaser(c *cluster, account string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			c.total--
			if c.accounts[account]--; c.accounts[account] <= 0 {
				delete(c.accounts, account)
			}
			close(c.freed)
			c.freed = make(chan struct{})
			b.mu.Unlock()
		})
	}
}

// reclaim runs Config.Reclaim on its own goroutine, for the databases on
// cluster clusterName of the accounts accepted by match (nil: every
// account), unless one is already running.
func (b *Budget) reclaim(clusterName string, match func(account string) bool) {
	if b.cfg.Reclaim == nil {
		return
	}
	b.mu.Lock()
	if b.reaping {
		b.mu.Unlock()
		return
	}
	b.reaping = true
	b.mu.Unlock()
	go func() {
		defer func() {
			b.mu.Lock()
			b.reaping = false
			b.mu.Unlock()
		}()
		b.cfg.Reclaim(func(pgDatabase string) bool {
			b.mu.Lock()
			p, placed := b.place[pgDatabase]
			a, ok := b.owner[pgDatabase]
			b.mu.Unlock()
			if placed && p.cluster != clusterName || !placed && clusterName != DefaultCluster && b.cfg.Cluster != nil {
				return false
			}
			if match == nil {
				return true
			}
			if !ok {
				a = "db:" + pgDatabase
			}
			return match(a)
		})
	}()
}

// Stats is a snapshot of a Budget, or of one cluster's.
type Stats struct {
	InUse    int            // slots in use
	Peak     int            // the most slots ever in use at once (per cluster; the sum of the clusters' peaks in total)
	Max      int            // the cap (the sum of the clusters' caps in total)
	Accounts map[string]int // slots in use per account (accounts with none are absent)
	// Clusters is the snapshot of each cluster met so far (nil in a
	// cluster's own snapshot).
	Clusters map[string]Stats
}

// Stats returns a snapshot: the sums over the clusters, and each cluster's.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{Accounts: map[string]int{}, Clusters: map[string]Stats{}}
	for name, c := range b.parts {
		cs := Stats{InUse: c.total, Peak: c.peak, Max: c.max, Accounts: make(map[string]int, len(c.accounts))}
		for a, n := range c.accounts {
			cs.Accounts[a] = n
			s.Accounts[a] += n
		}
		s.InUse += c.total
		s.Peak += c.peak
		s.Max += c.max
		s.Clusters[name] = cs
	}
	return s
}
