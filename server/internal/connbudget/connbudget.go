// Package connbudget is bitd's connection budget: how many backend
// connections to the platform cluster bitd holds, in total and per account,
// across the HTTP pools (pgpool), the wire proxy's sessions and the jobs.
//
// Every backend connection takes a slot before it is opened and gives it
// back when it is closed. A slot is granted when
//   - the account (the owner of the platform database) holds fewer than
//     PerAccount slots, and
//   - bitd holds fewer than Max slots in total.
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

// Config configures a Budget.
type Config struct {
	// Max is the cap on backend connections in total; it must be positive.
	Max int
	// PerAccount is the share (and cap) of each account; 0 means Max.
	PerAccount int
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

	mu       sync.Mutex
	total    int
	accounts map[string]int
	owner    map[string]string // pgDatabase → account (cache of Lookup)
	freed    chan struct{}     // closed and replaced when a slot is released
	reaping  bool              // a Reclaim is running
	peak     int
}

// Error is the refusal of a slot. Its message is meant for the tenant: it
// names the limit and what to do.
type Error struct {
	// Account is true when the account's share is the limit, false when
	// bitd's total is.
	Account bool
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
	return &Budget{cfg: cfg, accounts: map[string]int{}, owner: map[string]string{}, freed: make(chan struct{})}
}

// Max returns the total cap.
func (b *Budget) Max() int { return b.cfg.Max }

// PerAccount returns each account's share.
func (b *Budget) PerAccount() int { return b.cfg.PerAccount }

// highWater is the total above which idle connections are reclaimed
// proactively: nine tenths of Max, and at least one slot below it.
func (b *Budget) highWater() int { return min(b.cfg.Max*9/10, b.cfg.Max-1) }

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
func (b *Budget) limitOf(bucket string) int {
	if isReaders(bucket) {
		return max(1, b.cfg.PerAccount/2)
	}
	return b.cfg.PerAccount
}

// AcquireReader is Acquire for a connection as a database's reader role:
// it counts against the readers' bucket of the owning account, not the
// account's own share.
func (b *Budget) AcquireReader(ctx context.Context, pgDatabase string) (release func(), err error) {
	return b.AcquireFor(ctx, readersOf(b.Account(ctx, pgDatabase)))
}

// Acquire takes a slot for a connection to pgDatabase. It returns the
// function that gives the slot back (call it exactly once, when the
// connection is closed; later calls do nothing), or an *Error when the
// account's share or the total stays full for Config.Wait, or ctx's error.
func (b *Budget) Acquire(ctx context.Context, pgDatabase string) (release func(), err error) {
	return b.AcquireFor(ctx, b.Account(ctx, pgDatabase))
}

// AcquireFor is Acquire for a known account.
func (b *Budget) AcquireFor(ctx context.Context, account string) (release func(), err error) {
	var deadline <-chan time.Time
	for {
		b.mu.Lock()
		refusal := b.tryLocked(account)
		if refusal == nil {
			reap := b.total >= b.highWater()
			b.mu.Unlock()
			if reap {
				b.reclaim(b.heavy)
			}
			return b.releaser(account), nil
		}
		freed := b.freed
		b.mu.Unlock()
		if refusal.Account {
			b.reclaim(func(a string) bool { return a == account })
		} else {
			b.reclaim(nil)
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
			refusal = b.tryLocked(account)
			b.mu.Unlock()
			if refusal == nil {
				return b.releaser(account), nil
			}
			return nil, refusal
		case <-ctx.Done():
			return nil, fmt.Errorf("connbudget: waiting for a connection slot: %w", ctx.Err())
		}
	}
}

// heavy reports whether account holds at least half its share: the
// accounts whose idle connections a nearly full budget closes first.
func (b *Budget) heavy(account string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return 2*b.accounts[account] >= b.limitOf(account)
}

// tryLocked takes a slot for account, or returns why not.
func (b *Budget) tryLocked(account string) *Error {
	if n, limit := b.accounts[account], b.limitOf(account); n >= limit {
		return &Error{Account: true, Readers: isReaders(account), InUse: n, Limit: limit}
	}
	if b.total >= b.cfg.Max {
		return &Error{InUse: b.total, Limit: b.cfg.Max}
	}
	b.total++
	b.accounts[account]++
	b.peak = max(b.peak, b.total)
	return nil
}

func (b *Budget) releaser(account string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.total--
			if b.accounts[account]--; b.accounts[account] <= 0 {
				delete(b.accounts, account)
			}
			close(b.freed)
			b.freed = make(chan struct{})
			b.mu.Unlock()
		})
	}
}

// reclaim runs Config.Reclaim on its own goroutine, for the databases of
// the accounts accepted by match (nil: every account), unless one is
// already running.
func (b *Budget) reclaim(match func(account string) bool) {
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
			if match == nil {
				return true
			}
			b.mu.Lock()
			a, ok := b.owner[pgDatabase]
			b.mu.Unlock()
			if !ok {
				a = "db:" + pgDatabase
			}
			return match(a)
		})
	}()
}

// Stats is a snapshot of a Budget.
type Stats struct {
	InUse    int            // slots in use
	Peak     int            // the most slots ever in use at once
	Accounts map[string]int // slots in use per account (accounts with none are absent)
}

// Stats returns a snapshot.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{InUse: b.total, Peak: b.peak, Accounts: make(map[string]int, len(b.accounts))}
	for a, n := range b.accounts {
		s.Accounts[a] = n
	}
	return s
}
