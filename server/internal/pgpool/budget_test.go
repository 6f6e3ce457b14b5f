package pgpool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/connbudget"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// waitInUse polls the budget until it holds want slots; it fails the test
// at the deadline.
func waitInUse(t *testing.T, b *connbudget.Budget, want int) {
	t.Helper()
	testwait.Eventually(t, 30*time.Second, func() error {
		if got := b.Stats().InUse; got != want {
			return fmt.Errorf("budget holds %d slots, want %d", got, want)
		}
		return nil
	})
}

// TestBudget: pool connections take budget slots, a refused slot fails the
// Acquire with the budget's error, and every way a connection ends (closed
// by the caller, reclaimed while idle, a failed start-up, AfterConnect
// refusing it) gives its slot back.
func TestBudget(t *testing.T) {
	adminURL, db, role, sec := fixture(t)
	var m *pgpool.Manager
	b := connbudget.New(connbudget.Config{Max: 8, PerAccount: 4, Wait: -1,
		Lookup: func(context.Context, string) (string, error) { return "acct", nil },
		Reclaim: func(match func(string) bool) int {
			if m == nil {
				return 0
			}
			return m.ReleaseIdle(match)
		}})
	m = pgpool.New(pgpool.Config{ConnString: adminURL, Secret: sec, Budget: b})
	defer m.Close()
	ctx := t.Context()
	p, err := m.Pool(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}

	// The account's share is 4: four connections, then a refusal.
	var conns []*pgxpool.Conn
	for range 4 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatalf("acquire within the share: %v", err)
		}
		conns = append(conns, c)
	}
	if got := b.Stats().InUse; got != 4 {
		t.Fatalf("4 connections hold %d slots", got)
	}
	_, err = p.Acquire(ctx)
	var be *connbudget.Error
	if !errors.As(err, &be) || !be.Account || be.InUse != 4 || be.Limit != 4 {
		t.Fatalf("acquire over the share: %v, want a *connbudget.Error (account, 4 of 4)", err)
	}
	if !strings.Contains(err.Error(), "4 of 4") {
		t.Fatalf("refusal %q does not name the limit", err)
	}
	if got := b.Stats().InUse; got != 4 {
		t.Fatalf("a refused connection changed the count: %d slots, want 4", got)
	}

	// Closed by the caller: destroyed on release, slot back.
	if err := conns[0].Conn().Close(ctx); err != nil {
		t.Fatal(err)
	}
	conns[0].Release()
	waitInUse(t, b, 3)
	// Back to the pool idle: still holding slots until reclaimed.
	for _, c := range conns[1:] {
		c.Release()
	}
	if got := b.Stats().InUse; got != 3 {
		t.Fatalf("idle connections hold %d slots, want 3", got)
	}
	// (Release resets the session on its own goroutine first.)
	testwait.Eventually(t, 30*time.Second, func() error {
		if n := p.Stat().IdleConns(); n != 3 {
			return fmt.Errorf("%d idle connections, want 3", n)
		}
		return nil
	})
	if n := m.ReleaseIdle(func(d string) bool { return d != db }); n != 0 {
		t.Fatalf("ReleaseIdle of other databases closed %d connections, want 0", n)
	}
	if n := m.ReleaseIdle(func(d string) bool { return d == db }); n != 3 {
		t.Fatalf("ReleaseIdle closed %d connections, want 3", n)
	}
	waitInUse(t, b, 0)

	// Churn: many connections opened and destroyed leave no slot behind.
	for range 40 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("SELECT 1: %d, %v", one, err)
		}
		_ = c.Conn().Close(ctx)
		c.Release()
	}
	waitInUse(t, b, 0)

	// A failed start-up (no such database) gives its slot back.
	bad, err := m.Pool(ctx, db+"_missing", role)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Acquire(ctx); err == nil {
		t.Fatal("acquire on a missing database succeeded")
	}
	waitInUse(t, b, 0)

	// AfterConnect refusing a connection (the role had per-role settings)
	// gives its slot back too.
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "ALTER ROLE "+role+" SET work_mem = '1MB'"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Acquire(ctx); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("acquire as a tampered role: %v, want the reset error", err)
	}
	waitInUse(t, b, 0)
	c, err := p.Acquire(ctx) // the role was repaired
	if err != nil {
		t.Fatalf("acquire after the repair: %v", err)
	}
	c.Release()
	if got := b.Stats().InUse; got != 1 {
		t.Fatalf("one idle connection holds %d slots, want 1", got)
	}
}
