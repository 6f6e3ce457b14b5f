// Package quota enforces platform databases' storage limits
// (storage_limit_bytes) with PostgreSQL's own privileges: a background pass
// measures every database (pg_database_size) every Every and freezes the
// ones over their limit, thaws the frozen ones back at or under
// store.ThawPercent of it, and vacuums frozen ones so that deleted rows
// give their space back. The freezing itself is store.Freeze (ownership
// and privileges, see store/quota.go); nothing here inspects SQL.
//
// Bound: a database's size is compared with its limit at most Every (plus
// the time a pass takes) after it changed; Check measures one database at
// once (after an import commits) and Nudge soon (after an HTTP write, at
// most once a second per database). What a tenant writes in that window
// is the worst-case overshoot (docs/bitd.md, "Storage quotas").
package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultEvery is the default period of the pass.
const DefaultEvery = 10 * time.Second

// lockKey is the advisory lock (on the metadata database) one bitd holds
// while it runs a pass, so that replicas do not freeze the same database
// at once.
const lockKey = 0x626b71756f7461 // "bkquota"

// Enforcer runs the passes.
type Enforcer struct {
	Store *store.Store
	// Every is the period (0: DefaultEvery).
	Every time.Duration
	Log   *slog.Logger

	mu     sync.Mutex
	nudged map[string]*nudgeState // by database id (Nudge)
}

// Run runs a pass every Every until ctx ends.
func (e *Enforcer) Run(ctx context.Context) {
	every := e.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := e.Pass(ctx); err != nil && ctx.Err() == nil {
			e.log().Warn("storage quota pass failed; the next one tries again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Enforcer) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// Pass measures every live database once and freezes, thaws or vacuums
// what needs it. It returns nil at once when another pass or check (of
// this bitd or another) is running: the next one comes soon.
func (e *Enforcer) Pass(ctx context.Context) error {
	return e.locked(ctx, false, func() error {
		states, err := e.Store.QuotaStates(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, q := range states {
			if err := e.apply(ctx, q); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", q.PGName, err))
			}
			if ctx.Err() != nil {
				break
			}
		}
		return errors.Join(errs...)
	})
}

// Check measures one database and freezes or thaws it now, after waiting
// for a pass that is running.
func (e *Enforcer) Check(ctx context.Context, databaseID string) (q store.QuotaState, err error) {
	err = e.locked(ctx, true, func() error {
		if q, err = e.Store.QuotaState(ctx, databaseID); err != nil {
			return err
		}
		return e.apply(ctx, q)
	})
	return q, err
}

// locked runs fn holding the advisory lock on the metadata database that
// keeps passes and checks (of every bitd sharing it) from freezing and
// thawing at once; without wait it does nothing when the lock is taken.
func (e *Enforcer) locked(ctx context.Context, wait bool, fn func() error) error {
	conn, err := e.Store.DB.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if wait {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
			return err
		}
	} else {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(lockKey)).Scan(&got); err != nil {
			return err
		}
		if !got {
			return nil
		}
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // a session lock must not go back to the pool
		}
	}()
	return fn()
}

func (e *Enforcer) apply(ctx context.Context, q store.QuotaState) error {
	switch {
	case !q.Frozen && q.Over():
		return e.Store.Freeze(ctx, q)
	case q.Frozen && q.CanThaw():
		return e.Store.Thaw(ctx, q)
	case q.Frozen:
		if err := e.Store.VacuumFrozen(ctx, q.PGName); err != nil {
			return err
		}
		n, err := e.Store.QuotaState(ctx, q.DatabaseID)
		if err != nil || !n.CanThaw() {
			return err
		}
		return e.Store.Thaw(ctx, n)
	}
	return nil
}

// LimitMessage explains a write refused because a database is over its
// storage limit of limit bytes, and how to get back under it.
func LimitMessage(limit int64) string {
	return fmt.Sprintf("the database is over its storage limit of %d bytes (storage_limit_bytes): writes that would grow it are refused "+
		"until it is back at or under %d bytes (%d%% of the limit); reads, DELETE and TRUNCATE still work "+
		"(TRUNCATE gives space back at once; space freed by DELETE comes back when VACUUM can return emptied pages), "+
		"and the owner drops a table with SELECT %s('table_name'); or ask the operator to raise the limit",
		limit, limit/100*store.ThawPercent, store.ThawPercent, store.DropHelper)
}

// ErrorCode is the API error code of a write refused because a database is
// over its storage limit.
const ErrorCode = "storage_limit_exceeded"

// LimitError is the API error (HTTP 507 Insufficient Storage) for a write
// refused because a database is over its storage limit.
func LimitError(limit int64) *apierr.Error {
	return apierr.New(http.StatusInsufficientStorage, ErrorCode, "%s", LimitMessage(limit))
}

// Explain turns a permission error (SQLSTATE 42501) from a query on a
// frozen database, or the end of its session (57P01, or a lost
// connection) when it was being frozen mid-statement, into LimitError
// (SQLState 42501 or 57P01); other errors, and those errors on databases
// that are neither frozen nor over their limit, pass unchanged. It reads
// the database's state (one metadata query) only for those errors.
func Explain(ctx context.Context, st *store.Store, databaseID string, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	var pe *pgconn.PgError
	var ae *apierr.Error
	code, said := "57P01", "the session was ended"
	switch {
	case errors.As(err, &pe):
		if pe.Code != "42501" && pe.Code != "57P01" {
			return err // 57P01: a statement running when the database was frozen
		}
		code, said = pe.Code, "PostgreSQL said: "+pe.Message
	case errors.As(err, &ae):
		return err
	default:
		// The connection was lost: a session the freeze ended before its
		// FATAL 57P01 was read (the statement was still being sent, or
		// the reset behind it) looks like this.
	}
	q, qerr := st.QuotaState(context.WithoutCancel(ctx), databaseID)
	if qerr == nil && code == "42501" && !q.Frozen && q.LimitBytes > 0 {
		// Refused while frozen and thawed before this look, or a
		// permission the caller lacks: if it thawed just now, running it
		// once more tells.
		if thawed, terr := st.ThawedWithin(context.WithoutCancel(ctx), databaseID, thawRerunWindow); terr == nil && thawed {
			return &ThawedError{Err: err}
		}
	}
	// A freeze ends the owner's and writers' running statements before it
	// takes their privileges (store.Freeze), so a session it ended may
	// see the database over its limit and not yet frozen.
	if qerr != nil || !(q.Frozen || code == "57P01" && q.Over()) {
		return err
	}
	e := LimitError(q.LimitBytes)
	e.SQLState = code
	e.Detail = said
	return e
}

// thawRerunWindow is how long after a thaw a permission error is taken for
// one the freeze may have caused (ThawedError); the window it covers (from
// the refusal to Explain's look) is milliseconds.
const thawRerunWindow = time.Minute

// ThawedError is a permission error (42501) on a database that thawed
// within thawRerunWindow and is not frozen when Explain looks: the
// statement may have run while the database was frozen, and the thaw ended
// between the two. The
// query path runs such a statement once more when nothing of it completed
// (Rerun), and answers what the second run gives; an error of the caller's
// own privileges comes back the same.
type ThawedError struct{ Err error }

func (e *ThawedError) Error() string { return e.Err.Error() }
func (e *ThawedError) Unwrap() error { return e.Err }

// Rerun tells the query path that running the statement again may give
// another answer.
func (e *ThawedError) Rerun() bool { return true }

// ImportError refuses an import that would take a database over its
// storage limit; ErrorType is ErrorCode (the job's error type).
type ImportError struct{ Message string }

func (e *ImportError) Error() string     { return e.Message }
func (e *ImportError) ErrorType() string { return ErrorCode }

// CheckImport refuses, before anything is loaded, an import of incoming
// bytes (the file's size, taken as the growth it brings) into a database
// that is frozen or that it would take over its limit.
func CheckImport(ctx context.Context, st *store.Store, databaseID string, incoming int64) error {
	q, err := st.QuotaState(ctx, databaseID)
	if err != nil {
		return fmt.Errorf("import: check storage: %w", err)
	}
	switch {
	case q.LimitBytes <= 0:
		return nil
	case q.Frozen || q.Over():
		return &ImportError{Message: "nothing was imported: " + LimitMessage(q.LimitBytes)}
	case q.UsageBytes+incoming > q.LimitBytes:
		return &ImportError{Message: fmt.Sprintf("nothing was imported: the file (%d bytes) does not fit in what is left under the database's "+
			"storage limit of %d bytes (storage_limit_bytes; %d bytes in use, %d left). Delete or TRUNCATE data to make room, "+
			"import a smaller file, or ask the operator to raise the limit", incoming, q.LimitBytes, q.UsageBytes, q.LimitBytes-q.UsageBytes)}
	}
	return nil
}

// nudgeEvery is the shortest time between two checks Nudge starts for one
// database.
const nudgeEvery = time.Second

// Nudge checks database databaseID soon (in the background), after a
// request that may have written to it: at most once per second per
// database, and never while a check of it started here is still running.
// It narrows the window a tenant writing through HTTP has past its limit
// to about a second; the periodic pass covers everything else.
func (e *Enforcer) Nudge(databaseID string) {
	e.mu.Lock()
	if e.nudged == nil {
		e.nudged = map[string]*nudgeState{}
	}
	n := e.nudged[databaseID]
	if n == nil {
		n = &nudgeState{}
		e.nudged[databaseID] = n
	}
	now := time.Now()
	if n.running || now.Sub(n.last) < nudgeEvery {
		e.mu.Unlock()
		return
	}
	n.running, n.last = true, now
	if len(e.nudged) > 10000 { // forget databases not nudged for a while
		for id, x := range e.nudged {
			if !x.running && now.Sub(x.last) > time.Minute {
				delete(e.nudged, id)
			}
		}
	}
	e.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := e.Check(ctx, databaseID); err != nil && !errors.Is(err, store.ErrNotFound) {
			e.log().Warn("storage quota check after a write failed; the next pass tries again", "err", err)
		}
		e.mu.Lock()
		n.running = false
		e.mu.Unlock()
	}()
}

type nudgeState struct {
	last    time.Time
	running bool
}
