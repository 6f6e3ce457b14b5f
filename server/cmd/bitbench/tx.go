package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/jackc/pgx/v5"
)

// (e) Interactive transactions: one read-modify-write transaction per
// iteration, 8 clients —
//
//	BEGIN; SELECT v FROM accts WHERE id = $1 FOR UPDATE;
//	UPDATE accts SET v = v + 1 WHERE id = $1;
//	INSERT INTO moves (acct, delta) VALUES ($1, 1); COMMIT
//
// over HTTP as an interactive transaction (POST /tx, three POST /query
// with tx_id, POST /tx/{id}/commit: five requests), the same three
// statements as one POST /query/batch, pgx directly (one connection per
// client), and pgx through bitd's wire proxy. Rows are picked at random
// among txAccounts, so clients rarely wait on each other's locks.

const txAccounts = 10_000

var (
	txOnly = false // set by --tx-only
	// wireAddr is the wire proxy of the bitd bitbench started ("" when
	// none), or --pg-addr.
	wireAddr string
)

const (
	txSelect = "SELECT v FROM accts WHERE id = $1 FOR UPDATE"
	txUpdate = "UPDATE accts SET v = v + 1 WHERE id = $1"
	txInsert = "INSERT INTO moves (acct, delta) VALUES ($1, 1)"
	txSetup  = `CREATE TABLE accts (id int PRIMARY KEY, v int8 NOT NULL);
INSERT INTO accts SELECT g, 0 FROM generate_series(1, %d) g;
CREATE TABLE moves (id bigserial PRIMARY KEY, acct int NOT NULL, delta int NOT NULL);
ANALYZE accts`
)

// postJSON posts body to ep+path and decodes a 2xx answer into out.
func postJSON(c *http.Client, ep, key, path string, body any, out any) error {
	b, err := jsonx.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, ep+path, strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var raw jsonx.RawMessage
	if err := jsonx.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return fmt.Errorf("%s: status %d, undecodable answer: %w", path, resp.StatusCode, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: status %d: %.300s", path, resp.StatusCode, raw)
	}
	if out != nil {
		return jsonx.Unmarshal(raw, out)
	}
	return nil
}

// benchTx runs section (e). scratchURL is the direct baseline's database.
func benchTx(httpc *http.Client, ep, key, db, scratchURL string) error {
	ctx := context.Background()
	setup := fmt.Sprintf(txSetup, txAccounts)
	if err := adminExec(ctx, scratchURL, setup); err != nil {
		return err
	}
	if err := postJSON(httpc, ep, key, "/v2beta/query", map[string]any{"database_name": db, "query_string": setup}, nil); err != nil {
		return fmt.Errorf("create the transaction tables through bitd: %w", err)
	}
	interactive := measure(*duration, func() error {
		id := 1 + mrand.IntN(txAccounts)
		var tx struct {
			TxID string `json:"tx_id"`
		}
		if err := postJSON(httpc, ep, key, "/v2beta/tx", map[string]any{"database_name": db}, &tx); err != nil {
			return err
		}
		for _, q := range []string{txSelect, txUpdate, txInsert} {
			if err := postJSON(httpc, ep, key, "/v2beta/query", map[string]any{"tx_id": tx.TxID, "query_string": q, "params": []any{id}}, nil); err != nil {
				_ = postJSON(httpc, ep, key, "/v2beta/tx/"+tx.TxID+"/rollback", nil, nil)
				return err
			}
		}
		return postJSON(httpc, ep, key, "/v2beta/tx/"+tx.TxID+"/commit", nil, nil)
	})
	batch := measure(*duration, func() error {
		id := 1 + mrand.IntN(txAccounts)
		qs := []map[string]any{}
		for _, q := range []string{txSelect, txUpdate, txInsert} {
			qs = append(qs, map[string]any{"query_string": q, "params": []any{id}})
		}
		return postJSON(httpc, ep, key, "/v2beta/query/batch", map[string]any{"database_name": db, "queries": qs}, nil)
	})
	rmw := func(c *pgx.Conn) error {
		id := 1 + mrand.IntN(txAccounts)
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		var v int64
		if err := tx.QueryRow(ctx, txSelect, id).Scan(&v); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, txUpdate, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, txInsert, id); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	direct, err := measurePgx(ctx, scratchURL, *duration, rmw)
	if err != nil {
		return err
	}
	var wire *stats
	if wireAddr != "" {
		wireURL := fmt.Sprintf("postgres://bench:%s@%s/%s?sslmode=require", key, wireAddr, strings.ReplaceAll(db, "/", "%2F"))
		// The wire proxy takes the API key as the password and
		// "account/db" as the database.
		cfg, err := pgx.ParseConfig(wireURL)
		if err != nil {
			return fmt.Errorf("wire proxy URL: %w", err)
		}
		cfg.Password, cfg.Database = key, db
		if wire, err = measurePgxConfig(ctx, cfg, *duration, rmw); err != nil {
			return fmt.Errorf("through the wire proxy: %w", err)
		}
	}
	fmt.Println("(e) read-modify-write transaction (SELECT … FOR UPDATE, UPDATE, INSERT), 8 concurrent clients")
	fmt.Printf("    HTTP interactive (5 requests)   %7.0f tx/s  p50 %-9s p99 %s\n", interactive.rate(), interactive.pct(50), interactive.pct(99))
	fmt.Printf("    HTTP one batch (1 request)      %7.0f tx/s  p50 %-9s p99 %s\n", batch.rate(), batch.pct(50), batch.pct(99))
	fmt.Printf("    pgx direct                      %7.0f tx/s  p50 %-9s p99 %s\n", direct.rate(), direct.pct(50), direct.pct(99))
	if wire != nil {
		fmt.Printf("    pgx through the wire proxy      %7.0f tx/s  p50 %-9s p99 %s\n", wire.rate(), wire.pct(50), wire.pct(99))
	} else {
		fmt.Println("    pgx through the wire proxy      (no wire proxy: pass --pg-addr with --endpoint)")
	}
	fmt.Printf("    ratio interactive/pgx tx/s %.2f, batch/pgx %.2f\n\n", interactive.rate()/direct.rate(), batch.rate()/direct.rate())
	for _, m := range []*stats{interactive, batch} {
		if m.errs > 0 {
			return fmt.Errorf("(e): %d transactions failed; first: %v", m.errs, m.firstErr)
		}
	}
	return nil
}

// measurePgxConfig runs f on 8 direct connections made with cfg for d.
func measurePgxConfig(ctx context.Context, cfg *pgx.ConnConfig, d time.Duration, f func(*pgx.Conn) error) (*stats, error) {
	conns := make(chan *pgx.Conn, concurrency)
	var all []*pgx.Conn
	defer func() {
		for _, c := range all {
			_ = c.Close(context.Background())
		}
	}()
	for range concurrency {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		all = append(all, c)
		conns <- c
	}
	s := measure(d, func() error {
		c := <-conns
		defer func() { conns <- c }()
		return f(c)
	})
	if s.errs > 0 {
		return nil, fmt.Errorf("direct pgx: %w", s.firstErr)
	}
	return s, nil
}
