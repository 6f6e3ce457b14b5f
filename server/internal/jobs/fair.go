package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Fairness: one account may run at most Config.MaxRunningPerAccount jobs at
// once, across every bitd that shares the metadata database. A running job
// holds one of its account's slots: a session advisory lock on the metadata
// database, keyed by the account and the slot number, held by a dedicated
// connection (Service.slots) for as long as the job runs. PostgreSQL drops
// the lock when that connection ends, so a bitd that dies mid-job frees its
// slots at once (no lease to expire, nothing to clean up). A job that finds
// every slot of its account taken is snoozed (river does not count a snooze
// as an attempt) and tried again a few seconds later; the jobs of other
// accounts, ahead of it in the queue, run meanwhile.

// slotSnooze is how long a job of an account at its cap waits before it
// tries again (plus up to as much jitter, so that queued jobs spread out).
const slotSnooze = 3 * time.Second

// errNoSlot means every running-job slot of the job's account is taken.
var errNoSlot = errors.New("every running-job slot of the account is taken")

// slot is a held running-job slot; release frees it.
type slot struct {
	conn *pgxpool.Conn
	key  int64
}

// takeSlot takes a free running-job slot of key (an account) out of max,
// or returns errNoSlot.
func takeSlot(ctx context.Context, pool *pgxpool.Pool, key string, max int) (*slot, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("job slot: %w", err)
	}
	// One round trip: the first slot whose lock is free. LIMIT 1 stops the
	// scan at the first lock taken, so no other slot is locked.
	var lock int64
	err = conn.QueryRow(ctx, `SELECT k FROM (SELECT hashtextextended('bitkit-job-slot:' || $1 || ':' || i, 0) AS k
		FROM generate_series(0, $2 - 1) AS i) AS s WHERE pg_try_advisory_lock(k) LIMIT 1`, key, max).Scan(&lock)
	if errors.Is(err, pgx.ErrNoRows) {
		conn.Release()
		return nil, errNoSlot
	}
	if err != nil {
		// the lock may or may not be held: drop the connection, which frees it
		_ = conn.Hijack().Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("job slot: %w", err)
	}
	return &slot{conn: conn, key: lock}, nil
}

// release frees the slot; the connection goes back to the pool.
func (s *slot) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var ok bool
	if err := s.conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", s.key).Scan(&ok); err != nil || !ok {
		// closing the session is the other way to free its locks
		_ = s.conn.Hijack().Close(ctx)
		return
	}
	s.conn.Release()
}

// snoozeForSlot is the snooze of a job whose account is at its cap.
func snoozeForSlot() time.Duration {
	return slotSnooze + rand.N(slotSnooze)
}
