package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestDatabaseCap: an account cannot have more than MaxDatabasesPerAccount
// live databases, even when creations race (the count runs under a lock on
// the account's row, in the insert's transaction); other accounts are not
// affected. AccountOfPGDatabase maps a PostgreSQL name to its account.
func TestDatabaseCap(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	s.maxDBs = 3
	ctx := t.Context()
	u, err := s.CreateUser(ctx, "capped", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateUser(ctx, "other", "")
	if err != nil {
		t.Fatal(err)
	}
	acc := u.DefaultAccount.ID
	var first *Database
	for i := range 2 {
		d, err := s.CreateDatabase(ctx, acc, fmt.Sprintf("d%d", i), true, 0)
		if err != nil {
			t.Fatal(err)
		}
		first = d
	}
	// Three racing creations for the one place left: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for i := range 3 {
		wg.Go(func() {
			_, err := s.CreateDatabase(ctx, acc, fmt.Sprintf("race%d", i), true, 0)
			mu.Lock()
			defer mu.Unlock()
			var te *TooManyDatabasesError
			switch {
			case err == nil:
				created++
			case errors.As(err, &te) && te.Limit == 3:
				refused++
			default:
				t.Errorf("racing creation: %v", err)
			}
		})
	}
	wg.Wait()
	if created != 1 || refused != 2 {
		t.Fatalf("racing creations: %d created, %d refused; want 1 and 2", created, refused)
	}
	var n int
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM databases WHERE account_id = $1 AND deleted_at IS NULL`, acc).Scan(&n); err != nil || n != 3 {
		t.Fatalf("the account has %d live databases (%v), want 3", n, err)
	}
	_, err = s.CreateDatabase(ctx, acc, "one-more", true, 0)
	var te *TooManyDatabasesError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "already has 3 databases") || !strings.Contains(err.Error(), "--max-databases-per-account") {
		t.Fatalf("database past the cap: %v, want a TooManyDatabasesError naming the cap and the fix", err)
	}
	if _, err := s.CreateDatabase(ctx, other.DefaultAccount.ID, "d0", true, 0); err != nil {
		t.Fatalf("another account's database: %v", err)
	}

	if a, err := s.AccountOfPGDatabase(ctx, first.PGName); err != nil || a != acc {
		t.Fatalf("AccountOfPGDatabase(%s) = %q, %v; want %q", first.PGName, a, err, acc)
	}
	if _, err := s.AccountOfPGDatabase(ctx, "bk_missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AccountOfPGDatabase of an unknown name: %v, want ErrNotFound", err)
	}
}
