package pgdirect_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/bitkit-dev/bitkit/pgdirect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The equivalents of python-bitdotio's pooled_cursor, pooled_connection and
// get_connection. The address comes from $BITKIT_PG_ADDR (bitd dev writes
// it to demo.env), else 127.0.0.1:6432.
func Example() {
	ctx := context.Background()
	c, err := pgdirect.New(ctx, os.Getenv("BITKIT_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// pooled_cursor: commit on success, rollback on error or panic.
	err = c.WithTx(ctx, "alice/mydb", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes (body) VALUES ($1)", "hello")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// pooled_connection.
	var n int
	err = c.WithConn(ctx, "alice/mydb", func(conn *pgxpool.Conn) error {
		return conn.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("notes:", n)

	// get_connection: unpooled; the caller closes it.
	conn, err := c.Connect(ctx, "alice/mydb")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
}

// Options: a smaller pool, a shorter idle lifetime, an explicit address.
func ExampleNewConfig() {
	cfg, err := pgdirect.NewConfig("v2_example",
		pgdirect.WithAddr("127.0.0.1:6432"),
		pgdirect.WithMaxConns(10),
		pgdirect.WithMinConns(1),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Addr, cfg.MaxConns, cfg.MinConns, cfg.MaxConnIdleTime, cfg.SSLMode)
	// Output: 127.0.0.1:6432 10 1 4m0s verify-full
}
