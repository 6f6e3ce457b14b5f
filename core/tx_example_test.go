package core_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/bitkit-dev/bitkit/core"
)

// A read-modify-write transaction: lock the row, decide, write; run again
// on a serialization failure.
func ExampleClient_InTx() {
	ctx := context.Background()
	c, err := core.NewClient("http://127.0.0.1:8080", core.WithAPIKey("…"))
	if err != nil {
		return
	}
	errSoldOut := errors.New("sold out")
	err = c.InTx(ctx, "alice/shop", core.TxOptions{IsolationLevel: "serializable", MaxRetries: 5}, func(tx *core.Tx) error {
		r, err := tx.Query(ctx, "SELECT stock FROM items WHERE id = $1 FOR UPDATE", 42)
		if err != nil {
			return err
		}
		var stock int64
		if err := r.Scan(0, &stock); err != nil {
			return err
		}
		if stock == 0 {
			return errSoldOut // rolled back
		}
		_, err = tx.Exec(ctx, "UPDATE items SET stock = stock - 1 WHERE id = $1", 42)
		return err // nil: committed
	})
	fmt.Println(err)
}

// Begin, statements and Commit by hand.
func ExampleClient_Begin() {
	ctx := context.Background()
	c, err := core.NewClient("http://127.0.0.1:8080", core.WithAPIKey("…"))
	if err != nil {
		return
	}
	tx, err := c.Begin(ctx, "alice/shop", core.TxOptions{})
	if err != nil {
		return
	}
	defer tx.Rollback(ctx) // after Commit: ErrTxDone, ignored
	if _, err := tx.Exec(ctx, "INSERT INTO orders (item) VALUES ($1)", 42); err != nil {
		return
	}
	if _, err := tx.Exec(ctx, "UPDATE items SET stock = stock - 1 WHERE id = $1", 42); err != nil {
		return
	}
	fmt.Println(tx.Commit(ctx))
}
