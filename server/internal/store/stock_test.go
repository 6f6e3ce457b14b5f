package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

func pgDatabaseExists(t *testing.T, s *Store, pgName string) bool {
	t.Helper()
	var n int
	if err := s.admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = $1`, pgName).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, 60*time.Second, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}

// TestStockHandsOutAndRefills: once the store has had a database, the
// stock fills; a creation takes a stocked database (the oldest), which then
// works for its owner like a fresh one, and the stock refills. A failed
// creation (reserved name) leaves the stock as it was.
func TestStockHandsOutAndRefills(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	acct := newUserAccount(t, s, "stocky")
	stop := s.StartBackground(ctx, BackgroundOptions{StockSize: 2, Interval: time.Hour})
	t.Cleanup(stop)
	if ready, pending, err := s.StockCount(ctx); err != nil || ready+pending != 0 {
		t.Fatalf("a store that never had a database stocked %d+%d (%v)", ready, pending, err)
	}
	first, err := s.CreateDatabase(ctx, acct, "first", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the stock to fill", func() bool { r, _, _ := s.StockCount(ctx); return r == 2 })
	var oldest string
	if err := s.DB.QueryRow(ctx, `SELECT pg_name FROM db_stock WHERE ready ORDER BY created_at LIMIT 1`).Scan(&oldest); err != nil {
		t.Fatal(err)
	}
	d, err := s.CreateDatabase(ctx, acct, "second", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.PGName != oldest || d.PGName == first.PGName {
		t.Fatalf("creation got %s, want the oldest stocked database %s", d.PGName, oldest)
	}
	c, err := connectAs(t, d, "OWNER", nil)
	if err != nil {
		t.Fatalf("owner of a handed-out database: %v", err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("owner writes a handed-out database: %v", err)
	}
	r, err := connectAs(t, d, "READER", nil)
	if err != nil {
		t.Fatal(err)
	}
	var x int
	if err := r.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 1 {
		t.Fatalf("reader of a handed-out database: %d %v", x, err)
	}
	if _, err := r.Exec(ctx, "INSERT INTO t VALUES (2)"); sqlState(err) != "42501" {
		t.Fatalf("reader wrote to a handed-out database: %v", err)
	}
	waitUntil(t, "the stock to refill", func() bool { r, _, _ := s.StockCount(ctx); return r == 2 })

	// A refused creation takes nothing from the stock.
	if _, err := s.DeleteDatabase(ctx, first); err != nil {
		t.Fatal(err)
	}
	var re *ReservedError
	if _, err := s.CreateDatabase(ctx, acct, "FIRST", true, 0); !errors.As(err, &re) {
		t.Fatalf("reserved name: %v", err)
	}
	if r, _, _ := s.StockCount(ctx); r != 2 {
		t.Fatalf("a refused creation changed the stock to %d", r)
	}
	if _, err := s.ReleaseName(ctx, "stocky", "First"); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := s.ReleaseName(ctx, "stocky", "first"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release twice: %v", err)
	}
	if _, err := s.CreateDatabase(ctx, acct, "first", true, 0); err != nil {
		t.Fatalf("create on a released name: %v", err)
	}
}

// TestStockReclaimsOrphansAndStaleStock: a row neither ready nor locked
// (its bitd died while provisioning) and a ready row another build made are
// dropped with their PostgreSQL objects; a row being provisioned (locked)
// and this build's ready rows are left alone.
func TestStockReclaimsOrphansAndStaleStock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	b := s.bgState()
	mk := func(ready bool, key string, age time.Duration) string {
		t.Helper()
		n := newPGName()
		if _, err := s.DB.Exec(ctx, `INSERT INTO db_stock (pg_name, stock_key, ready, created_at) VALUES ($1, $2, $3, now() - make_interval(secs => $4))`,
			n, key, ready, age.Seconds()); err != nil {
			t.Fatal(err)
		}
		if err := s.provision(ctx, n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	orphan := mk(false, b.key, time.Minute)
	stale := mk(true, "another-build", time.Minute)
	good := mk(true, b.key, time.Minute)
	busy := mk(false, b.key, time.Minute)
	young := mk(false, b.key, 0)
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM db_stock WHERE pg_name = $1 FOR UPDATE`, busy); err != nil {
		t.Fatal(err)
	}
	s.reclaimStock(ctx)
	for n, want := range map[string]bool{orphan: false, stale: false, good: true, busy: true, young: true} {
		if got := pgDatabaseExists(t, s, n); got != want {
			t.Errorf("%s: database exists = %v, want %v", n, got, want)
		}
		var rows int
		if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM db_stock WHERE pg_name = $1`, n).Scan(&rows); err != nil || (rows == 1) != want {
			t.Errorf("%s: %d stock rows, want present=%v (%v)", n, rows, want, err)
		}
		if !want {
			var roles int
			if err := s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1 OR rolname LIKE $1 || '\_%'`, n).Scan(&roles); err != nil || roles != 0 {
				t.Errorf("%s: %d roles left (%v)", n, roles, err)
			}
		}
	}
}

// TestDeleteInBackgroundAndReservationOption: DeleteDatabaseInBackground
// answers before the drop, which the reaper finishes; with
// NameReservation negative no name is reserved.
func TestDeleteInBackgroundAndReservationOption(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := openTest(t)
	s, err := Open(ctx, Options{AdminURL: testURL(t), MetadataDB: base.MetadataDB(), Secret: testSecret, NameReservation: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	acct := newUserAccount(t, s, "reaped")
	d, err := s.CreateDatabase(ctx, acct, "doomed", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	until, err := s.DeleteDatabaseInBackground(ctx, d)
	if err != nil || !until.IsZero() {
		t.Fatalf("delete without reservation: %v, reserved until %v", err, until)
	}
	if !pgDatabaseExists(t, s, d.PGName) {
		t.Fatal("premise: no reaper runs yet, so the database is still there")
	}
	if _, err := s.CreateDatabase(ctx, acct, "doomed", true, 0); err != nil {
		t.Fatalf("a deleted name without reservation is free at once: %v", err)
	}
	stop := s.StartBackground(ctx, BackgroundOptions{Interval: time.Hour})
	t.Cleanup(stop)
	waitUntil(t, "the reaper's drop", func() bool { return !pgDatabaseExists(t, s, d.PGName) })
	waitUntil(t, "dropped_at", func() bool {
		var done bool
		_ = s.DB.QueryRow(ctx, `SELECT dropped_at IS NOT NULL FROM databases WHERE id = $1`, d.ID).Scan(&done)
		return done
	})
}

// TestStockFollowsDemand: a burst of creations larger than the stock
// raises the stock target (each creation that found the stock empty adds
// one) up to StockMax, and the stock fills to it; once the last shortfall
// is older than StockDecay the target falls back and the stocked databases
// above it are dropped. The very first creation (the stock not filling
// yet) raises nothing.
func TestStockFollowsDemand(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	acct := newUserAccount(t, s, "bursty")
	stop := s.StartBackground(ctx, BackgroundOptions{StockSize: 2, StockMax: 6, Interval: time.Hour})
	t.Cleanup(stop)
	target := func() (n int) {
		t.Helper()
		err := s.DB.QueryRow(ctx, `SELECT coalesce((SELECT target FROM db_stock_targets WHERE placement = 'default'), 0)`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := s.CreateDatabase(ctx, acct, "first", true, 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the stock to fill to 2", func() bool { r, _, _ := s.StockCount(ctx); return r == 2 })
	if n := target(); n != 0 {
		t.Fatalf("the first creation (stock not filling yet) raised the target to %d", n)
	}
	// A burst of 12 against a stock of 2.
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			if _, err := s.CreateDatabase(ctx, acct, fmt.Sprintf("burst%02d", i), true, 0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := target(); n != 6 {
		t.Fatalf("after a burst of 12 against a stock of 2 the target is %d, want the maximum 6", n)
	}
	kick(s.bgState().kickStock)
	waitUntil(t, "the stock to grow to 6", func() bool { r, _, _ := s.StockCount(ctx); return r == 6 })
	// Quiet for longer than the decay: the target falls back to 2 and the
	// refill drops the four above it.
	if _, err := s.DB.Exec(ctx, `UPDATE db_stock_targets SET shortfall_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	var stocked []string
	rows, err := s.DB.Query(ctx, `SELECT pg_name FROM db_stock WHERE ready`)
	if err == nil {
		stocked, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatal(err)
	}
	kick(s.bgState().kickStock)
	waitUntil(t, "the stock to shrink to 2", func() bool { r, _, _ := s.StockCount(ctx); return r == 2 })
	dropped := 0
	for _, n := range stocked {
		if !pgDatabaseExists(t, s, n) {
			dropped++
		}
	}
	if dropped != 4 {
		t.Fatalf("%d of the 6 stocked databases were dropped when the target fell back, want 4", dropped)
	}
}
