package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Login rate limits live in the metadata database (table login_limits,
// migration 0009), so every replica counts the same failures. Each key (a
// user name, a client address) has a fixed window: its row counts the
// window's failures plus the attempts still being verified, and a login
// reserves its attempt in every key's row before the password is checked
// and settles it after.
//
// Write cost: a refused attempt (limited or busy) is one read and no
// write; an attempt that is verified is two writes, one transaction that
// upserts one row per key (reserve) and one UPDATE of the same rows
// (settle: a failure keeps the count, a success clears the keys that say
// so and gives the others their slot back). Rows of ended windows are
// deleted by SweepLoginLimits, so the table holds at most the keys seen in
// about one window, whatever names a flood of failures uses.

// LoginKey is one key a login attempt is counted against.
type LoginKey struct {
	Key string
	// Limit is the most failures (settled or still being verified) the
	// key may have in one window.
	Limit int
	// ClearedBySuccess: a successful login resets the key's count (when
	// no other attempt for it is in flight) instead of only giving its
	// own reservation back.
	ClearedBySuccess bool
}

// LoginReservation is an attempt counted by ReserveLogin, to be settled
// once with SettleLogin.
type LoginReservation struct {
	keys   []LoginKey
	resets []time.Time // the window each key was counted in
}

// LoginOutcome is how a reserved attempt ended.
type LoginOutcome int

const (
	// LoginFailed keeps the reservation as a failure.
	LoginFailed LoginOutcome = iota
	// LoginSucceeded clears ClearedBySuccess keys and gives the others
	// their slot back.
	LoginSucceeded
	// LoginNotVerified (busy, error, client gone) gives the reservation
	// back.
	LoginNotVerified
)

var errLoginLimited = errors.New("login limited")

// ReserveLogin counts one attempt against every key, atomically, in the
// windows that keys are in (a key without a live window starts one of
// length window). When a key's settled failures reach its limit nothing is
// counted and wait is how long until its window ends; when a key is at its
// limit only because of attempts still being verified, nothing is counted
// and busy is true. Otherwise the returned reservation must be settled.
func (s *Store) ReserveLogin(ctx context.Context, keys []LoginKey, window time.Duration) (res *LoginReservation, wait time.Duration, busy bool, err error) {
	// A read first, so that a limited attempt writes nothing.
	if wait, busy, err := s.loginBlocked(ctx, keys); err != nil || wait > 0 || busy {
		return nil, wait, busy, err
	}
	res = &LoginReservation{keys: keys, resets: make([]time.Time, len(keys))}
	err = pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, k := range keys {
			// The conditional upsert re-checks the limit on the row it
			// locks: concurrent attempts on any replica serialize here.
			b.Queue(`INSERT INTO login_limits AS l (key, n, in_flight, reset_at)
				VALUES ($1, 1, 1, now() + $3::bigint * interval '1 microsecond')
				ON CONFLICT (key) DO UPDATE SET
					n = CASE WHEN l.reset_at <= now() THEN 1 ELSE l.n + 1 END,
					in_flight = CASE WHEN l.reset_at <= now() THEN 1 ELSE l.in_flight + 1 END,
					reset_at = CASE WHEN l.reset_at <= now() THEN excluded.reset_at ELSE l.reset_at END
				WHERE l.reset_at <= now() OR l.n < $2
				RETURNING reset_at`, k.Key, k.Limit, window.Microseconds())
		}
		br := tx.SendBatch(ctx, b)
		for i := range keys {
			if err := br.QueryRow().Scan(&res.resets[i]); err != nil {
				br.Close()
				if errors.Is(err, pgx.ErrNoRows) {
					return errLoginLimited // another attempt got there first: roll back
				}
				return err
			}
		}
		return br.Close()
	})
	if errors.Is(err, errLoginLimited) {
		wait, busy, err = s.loginBlocked(ctx, keys)
		if err == nil && wait == 0 {
			busy = true // the window moved on meanwhile: retry shortly
		}
		return nil, wait, busy, err
	}
	if err != nil {
		return nil, 0, false, err
	}
	return res, 0, false, nil
}

// loginBlocked reads whether keys are at their limits (see ReserveLogin).
func (s *Store) loginBlocked(ctx context.Context, keys []LoginKey) (wait time.Duration, busy bool, err error) {
	names := make([]string, len(keys))
	limit := map[string]int{}
	for i, k := range keys {
		names[i] = k.Key
		limit[k.Key] = k.Limit
	}
	rows, err := s.DB.Query(ctx, `SELECT key, n, in_flight, (extract(epoch FROM reset_at - now()) * 1e6)::bigint
		FROM login_limits WHERE key = ANY($1) AND reset_at > now()`, names)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key         string
			n, inFlight int
			left        int64
		)
		if err := rows.Scan(&key, &n, &inFlight, &left); err != nil {
			return 0, false, err
		}
		if lim := limit[key]; n >= lim {
			if n-inFlight >= lim {
				wait = max(wait, time.Duration(left)*time.Microsecond)
			} else {
				busy = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if wait > 0 {
		busy = false
	}
	return wait, busy, nil
}

// SettleLogin settles a reservation. Keys whose window has ended since are
// left alone (their new window does not hold the reservation).
func (s *Store) SettleLogin(ctx context.Context, res *LoginReservation, outcome LoginOutcome) error {
	names := make([]string, len(res.keys))
	clears := make([]bool, len(res.keys))
	for i, k := range res.keys {
		names[i], clears[i] = k.Key, k.ClearedBySuccess
	}
	_, err := s.DB.Exec(ctx, `UPDATE login_limits l SET
			in_flight = l.in_flight - 1,
			n = CASE
				WHEN $4 = 0 THEN l.n
				WHEN $4 = 1 AND s.clears THEN CASE WHEN l.in_flight = 1 THEN 0 ELSE l.n END
				ELSE l.n - 1
			END
		FROM unnest($1::text[], $2::timestamptz[], $3::bool[]) AS s(key, reset_at, clears)
		WHERE l.key = s.key AND l.reset_at = s.reset_at`, names, res.resets, clears, int(outcome))
	return err
}

// SweepLoginLimits deletes the rows of ended windows and returns how many.
func (s *Store) SweepLoginLimits(ctx context.Context) (int64, error) {
	tag, err := s.DB.Exec(ctx, `DELETE FROM login_limits WHERE reset_at <= now()`)
	return tag.RowsAffected(), err
}

// LoginLimitCount returns key's count and attempts in flight in its live
// window (0, 0 when it has none): for tests and operators.
func (s *Store) LoginLimitCount(ctx context.Context, key string) (n, inFlight int, err error) {
	err = s.DB.QueryRow(ctx, `SELECT n, in_flight FROM login_limits WHERE key = $1 AND reset_at > now()`, key).Scan(&n, &inFlight)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	return n, inFlight, err
}
