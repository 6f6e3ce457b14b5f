package pgpool_test

import (
	"context"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestQueuedReset drives the pipelined reset by hand on a pool of one
// connection: a reset sent behind a statement cleans the session, a queued
// reset whose statement never left is not waited for, and a statement that
// leaves a transaction open gets its connection destroyed; in every case the
// next statement reads its own answer.
func TestQueuedReset(t *testing.T) {
	adminURL, db, role, sec := fixture(t)
	ctx := t.Context()
	m := pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec, MaxConnsPerPool: 1})
	defer m.Close()
	p, err := m.Pool(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}
	// use runs sql with a queued reset and returns FinishReset's error.
	use := func(t *testing.T, c *pgxpool.Conn, rctx context.Context, sql string) (finishErr error) {
		t.Helper()
		pc := c.Conn().PgConn()
		pgpool.QueueReset(pc)
		_, _ = pc.Exec(rctx, sql).ReadAll()
		return pgpool.FinishReset(pc)
	}
	// next acquires the connection and checks its session and answers.
	next := func(t *testing.T) (pid uint32, searchPath string) {
		t.Helper()
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		var n int
		if err := c.QueryRow(ctx, "SELECT 42, current_setting('search_path')").Scan(&n, &searchPath); err != nil || n != 42 {
			t.Fatalf("SELECT 42 answered %d, %v: the connection is out of step", n, err)
		}
		return c.Conn().PgConn().PID(), searchPath
	}
	pid0, clean := next(t)

	t.Run("sent behind the statement", func(t *testing.T) {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := use(t, c, ctx, "SET search_path = leaked; SELECT 1"); err != nil {
			t.Fatalf("FinishReset: %v", err)
		}
		c.Release()
		pid, sp := next(t)
		if pid != pid0 || sp != clean {
			t.Errorf("backend %d (was %d), search_path %q (want %q)", pid, pid0, sp, clean)
		}
	})
	t.Run("statement never sent", func(t *testing.T) {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		if err := use(t, c, done, "SELECT 1"); err != nil {
			t.Fatalf("FinishReset waited for a reset never sent: %v", err)
		}
		if _, err := c.Exec(ctx, "SET search_path = leaked"); err != nil {
			t.Fatal(err)
		}
		c.Release()
		if pid, sp := next(t); pid != pid0 || sp != clean {
			t.Errorf("backend %d (was %d), search_path %q (want %q)", pid, pid0, sp, clean)
		}
	})
	t.Run("statement sent before the reset's answer was read", func(t *testing.T) {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pc := c.Conn().PgConn()
		pgpool.QueueReset(pc)
		if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, "SELECT 2").ReadAll(); err == nil {
			t.Error("a statement sent with the reset's answer unread ran")
		}
		c.Release()
		pid, sp := next(t)
		if pid == pid0 || sp != clean {
			t.Errorf("backend %d (was %d: must be replaced), search_path %q (want %q)", pid, pid0, sp, clean)
		}
		pid0 = pid
	})
	t.Run("transaction left open", func(t *testing.T) {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := use(t, c, ctx, "BEGIN; SET LOCAL search_path = leaked"); err == nil {
			t.Error("DISCARD ALL inside a transaction block succeeded")
		}
		c.Release()
		if pid, sp := next(t); pid == pid0 || sp != clean {
			t.Errorf("backend %d (was %d: must be replaced), search_path %q (want %q)", pid, pid0, sp, clean)
		}
	})
}
