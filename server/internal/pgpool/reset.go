package pgpool

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Session reset without a round trip of its own.
//
// A connection must go back to its pool with a clean session: no SET value,
// role, temporary table, prepared statement, cursor, LISTEN or advisory lock
// of the caller who used it. Which statements change a session cannot be
// told from the SQL or its command tags (a SELECT may call set_config,
// pg_advisory_lock or a function that does anything), so every connection
// is reset with DISCARD ALL; what is saved is the wait. A caller about to
// send its (last) statement calls QueueReset: the statement's bytes leave in
// one write with DISCARD ALL behind them, PostgreSQL runs the reset right
// after the statement (whose results it has already flushed), and the
// reset's answer arrives with theirs. Once the statement's results are read
// the caller releases the connection, and ResetSession (the pool's
// AfterRelease, on a goroutine of its own) reads the reset's answer and
// returns the connection to its pool; a caller that must use the connection
// again first reads it with FinishReset. A statement that leaves a transaction open makes
// the DISCARD ALL fail (it cannot run in a transaction block) and the
// connection is destroyed, as before. Pool users that do neither (jobs,
// other callers) keep the reset on release.

// discardAllMsg is the simple-protocol Query message "DISCARD ALL".
var discardAllMsg = func() []byte {
	b, err := (&pgproto3.Query{String: "DISCARD ALL"}).Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}()

func guardOf(pc *pgconn.PgConn) *copyGuard {
	g, _ := pc.Conn().(*copyGuard)
	return g
}

// QueueReset makes the next message sent on pc (a connection of a
// Manager's pool) carry DISCARD ALL behind it, in the same write. Call it
// right before sending the last statement (pgconn's Exec, ExecParams,
// ExecPrepared…), read that statement's results as usual, then release
// the connection, or call FinishReset before sending anything else (a
// statement sent with the reset's answer unread closes the connection).
// On other connections it does nothing (the pool resets them on release).
func QueueReset(pc *pgconn.PgConn) {
	if g := guardOf(pc); g != nil {
		g.queueReset = true
		g.clean = false
	}
}

// ResetOnRelease undoes an earlier FinishReset: pc, about to be used
// again, gets its session reset when it is released.
func ResetOnRelease(pc *pgconn.PgConn) {
	if g := guardOf(pc); g != nil {
		g.clean = false
	}
}

// FinishReset reads the answer of the DISCARD ALL that QueueReset sent,
// after the statement's results have been read; it does nothing when none
// was sent. On success the connection is marked clean and goes back to its
// pool without another reset. A reset whose answer cannot be read within
// resetTimeout closes the connection (what is unread would answer the next
// statement).
func FinishReset(pc *pgconn.PgConn) error {
	g := guardOf(pc)
	if g == nil {
		return nil
	}
	g.queueReset = false
	if !g.resetSent {
		return nil
	}
	g.resetSent = false
	if pc.IsClosed() || pc.IsBusy() {
		return errors.New("pgpool: connection closed or busy before its reset was read")
	}
	// A deadline on the socket instead of a context: no watcher per read.
	_ = g.SetReadDeadline(time.Now().Add(resetTimeout))
	defer func() { _ = g.SetReadDeadline(time.Time{}) }()
	var failed error
	discarded := false
	for {
		msg, err := pc.ReceiveMessage(context.Background())
		if err != nil {
			closeNow(pc)
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CommandComplete:
			discarded = string(m.CommandTag) == "DISCARD ALL"
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			if failed != nil {
				return failed
			}
			if !discarded {
				// Not the reset's answer: the connection is out of step.
				closeNow(pc)
				return errors.New("pgpool: the session reset's answer was not where expected; the connection was closed")
			}
			if m.TxStatus != 'I' {
				return errors.New("pgpool: session reset left a transaction open")
			}
			g.clean = true
			return nil
		}
	}
}

// ResetSession is the AfterRelease hook of every pool: it reports whether
// conn may go back to its pool. A closed connection, one with a transaction
// open or failed, or one whose reset fails is destroyed. A connection
// FinishReset marked clean goes back at once; one with a reset sent but
// not read has it read; any other runs DISCARD ALL.
func ResetSession(conn *pgx.Conn) bool {
	pc := conn.PgConn()
	if pc.IsClosed() || pc.IsBusy() || pc.TxStatus() != 'I' {
		return false
	}
	if g := guardOf(pc); g != nil {
		g.queueReset = false
		if g.resetSent && FinishReset(pc) != nil {
			return false
		}
		if g.clean {
			g.clean = false
			return true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
	defer cancel()
	_, err := pc.Exec(ctx, "DISCARD ALL").ReadAll()
	return err == nil && pc.TxStatus() == 'I'
}

// closeNow closes pc without waiting on the server.
func closeNow(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = pc.Close(ctx)
}
