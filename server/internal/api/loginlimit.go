package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// loginLimiter counts failed logins per user name and per client address
// in fixed windows. The counts live in the metadata database
// (store.ReserveLogin), so every replica sees the failures made through
// the others. A login reserves its attempt (counted as a failure) before
// the password is verified and settles it after, so N concurrent guesses,
// spread over any replicas, get at most the limit verified:
//
//   - fail keeps the reservation;
//   - succeed resets the user's count (forgets its earlier failures) when
//     no other attempt for the user is in flight, and otherwise only keeps
//     its own reservation, so a burst that holds the right password still
//     gets no more than the limit verified; the address count gets the
//     reservation back;
//   - cancel (nothing was verified: busy, error, client gone) gives the
//     reservation back.
//
// Rows of ended windows are swept by whichever replica handles a login
// once a window has passed since its last sweep. It is safe for
// concurrent use.
type loginLimiter struct {
	st      *store.Store
	log     *slog.Logger
	perUser int
	perAddr int
	window  time.Duration
	// lastSweep is the unix nanos of this replica's last sweep.
	lastSweep atomic.Int64
}

// attempt is a reserved login attempt.
type attempt = store.LoginReservation

// settleTimeout bounds a settlement, which runs even when the request's
// context has ended.
const settleTimeout = 5 * time.Second

func newLoginLimiter(st *store.Store, log *slog.Logger, perUser, perAddr int, w time.Duration) *loginLimiter {
	l := &loginLimiter{st: st, log: log, perUser: perUser, perAddr: perAddr, window: w}
	l.lastSweep.Store(time.Now().UnixNano())
	return l
}

// limitKey is the key of a user name ("u:") or client address ("a:"). A
// long one is stored as its hash, so that a flood of long names cannot
// make rows large.
func limitKey(prefix, s string) string {
	if len(s) > 100 {
		h := sha256.Sum256([]byte(s))
		return prefix + "#" + hex.EncodeToString(h[:])
	}
	return prefix + s
}

// reserve counts one attempt for user (case-insensitive) and addr; see
// store.ReserveLogin for wait and busy.
func (l *loginLimiter) reserve(ctx context.Context, user, addr string) (a *attempt, wait time.Duration, busy bool, err error) {
	l.maybeSweep()
	return l.st.ReserveLogin(ctx, []store.LoginKey{
		{Key: limitKey("u:", strings.ToLower(user)), Limit: l.perUser, ClearedBySuccess: true},
		{Key: limitKey("a:", addr), Limit: l.perAddr},
	}, l.window)
}

func (l *loginLimiter) settle(a *attempt, o store.LoginOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := l.st.SettleLogin(ctx, a, o); err != nil {
		// The reservation stays counted until its window ends.
		l.log.Warn("login limiter: cannot settle an attempt; it counts as a failure until its window ends", "err", err)
	}
}

// fail settles a as a failed login: it stays counted.
func (l *loginLimiter) fail(a *attempt) { l.settle(a, store.LoginFailed) }

// succeed settles a as a successful login.
func (l *loginLimiter) succeed(a *attempt) { l.settle(a, store.LoginSucceeded) }

// cancel settles a as never verified: its reservation is given back.
func (l *loginLimiter) cancel(a *attempt) { l.settle(a, store.LoginNotVerified) }

// maybeSweep deletes ended windows in the background when a window has
// passed since this replica's last sweep.
func (l *loginLimiter) maybeSweep() {
	last := l.lastSweep.Load()
	now := time.Now().UnixNano()
	if time.Duration(now-last) < l.window || !l.lastSweep.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := l.st.SweepLoginLimits(ctx); err != nil {
			l.log.Warn("login limiter: sweeping ended windows failed; the next login after a window retries", "err", err)
		}
	}()
}
