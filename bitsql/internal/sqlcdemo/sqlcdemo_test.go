//go:build !js

package sqlcdemo_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/bitkit-dev/bitkit/bitsql"
	"github.com/bitkit-dev/bitkit/bitsql/internal/sqlcdemo"
	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// transfer moves amount between accounts the way an application using
// sqlc's code does: database/sql transaction, row locks, read, decide,
// write.
func transfer(ctx context.Context, db *sql.DB, from, to int64, amount string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := sqlcdemo.New(db).WithTx(tx)
	// Lock both rows in id order (no deadlock between opposite transfers).
	first, second := min(from, to), max(from, to)
	if _, err := q.GetAccountForUpdate(ctx, first); err != nil {
		return err
	}
	if _, err := q.GetAccountForUpdate(ctx, second); err != nil {
		return err
	}
	src, err := q.GetAccountForUpdate(ctx, from)
	if err != nil {
		return err
	}
	var have, want float64
	fmt.Sscan(src.Balance, &have)
	fmt.Sscan(amount, &want)
	if have < want {
		return errInsufficient
	}
	if _, err := q.AddBalance(ctx, sqlcdemo.AddBalanceParams{ID: from, Amount: "-" + amount}); err != nil {
		return err
	}
	if _, err := q.AddBalance(ctx, sqlcdemo.AddBalanceParams{ID: to, Amount: amount}); err != nil {
		return err
	}
	if _, err := q.CreateTransfer(ctx, sqlcdemo.CreateTransferParams{FromID: from, ToID: to, Amount: amount}); err != nil {
		return err
	}
	return tx.Commit()
}

var errInsufficient = errors.New("insufficient funds")

func TestSqlcStyleTransfers(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("sqlc%d", time.Now().UnixNano()%1e9)
	if _, err := c.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile("query.sql")
	if err != nil {
		t.Fatal(err)
	}
	ddl := string(schema[:strings.Index(string(schema), "-- name:")])
	if _, err := c.Query(ctx, s.User+"/"+name, ddl); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BITKIT_API_KEY", s.APIKey)
	db, err := sql.Open("bitkit", s.Endpoint+"?database="+url.QueryEscape(s.User+"/"+name))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := sqlcdemo.New(db)
	a, err := q.CreateAccount(ctx, sqlcdemo.CreateAccountParams{Owner: "alice", Balance: "100.00", Note: sql.NullString{String: "first", Valid: true}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.CreateAccount(ctx, sqlcdemo.CreateAccountParams{Owner: "bob", Balance: "100.00"})
	if err != nil {
		t.Fatal(err)
	}
	if a.CreatedAt.IsZero() || b.Note.Valid {
		t.Fatalf("accounts: %+v %+v", a, b)
	}
	// Concurrent opposite transfers of 1.00: the totals stay exact, and
	// every committed transfer has its row.
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				from, to := a.ID, b.ID
				if (i+j)%2 == 1 {
					from, to = to, from
				}
				if err := transfer(ctx, db, from, to, "1.00"); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				done++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// A transfer that decides not to write leaves nothing.
	if err := transfer(ctx, db, a.ID, b.ID, "1000.00"); !errors.Is(err, errInsufficient) {
		t.Fatalf("overdraft: %v", err)
	}
	accts, err := q.ListAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM transfers").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var total string
	if err := db.QueryRowContext(ctx, "SELECT sum(balance) FROM accounts").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if n != done || n != 20 || total != "200.00" || len(accts) != 2 {
		t.Fatalf("%d transfer rows for %d transfers (want 20), total %s (want 200.00), accounts %+v", n, done, total, accts)
	}
}
