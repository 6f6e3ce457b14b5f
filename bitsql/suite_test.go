package bitsql_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"
)

// runSuite is the driver's conformance suite: database/sql's own
// behaviour over a real bitd, natively and under js/wasm in Node. db
// points at an empty database.
func runSuite(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	mustExec := func(q string, args ...any) sql.Result {
		t.Helper()
		r, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return r
	}
	t.Run("Ping", func(t *testing.T) {
		if err := db.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	})
	mustExec("CREATE TABLE acct (id int8 PRIMARY KEY, owner text, balance numeric NOT NULL, note bytea, at timestamptz)")

	t.Run("ExecPlaceholdersRowsAffected", func(t *testing.T) {
		r := mustExec("INSERT INTO acct (id, owner, balance) VALUES ($1, $2, $3), ($4, $5, $6)", 1, "alice", "100.00", 2, "bob", "50.50")
		if n, err := r.RowsAffected(); err != nil || n != 2 {
			t.Fatalf("RowsAffected = %d, %v; want 2", n, err)
		}
		if _, err := r.LastInsertId(); err == nil || !strings.Contains(err.Error(), "RETURNING") {
			t.Fatalf("LastInsertId: %v", err)
		}
		if _, err := db.ExecContext(ctx, "SELECT $1", sql.Named("x", 1)); err == nil || !strings.Contains(err.Error(), "placeholders") {
			t.Fatalf("named argument: %v", err)
		}
	})

	t.Run("ExactTypesAndNulls", func(t *testing.T) {
		ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
		blob := []byte{0, 1, 2, 0xff, '\\', 'x'}
		var (
			i8    int64
			num   string
			at    time.Time
			b     []byte
			null  sql.NullString
			nullI *int64
			ok    bool
			f     float64
			day   time.Time
			js    []byte
			arr   string
		)
		err := db.QueryRowContext(ctx, `SELECT $1::int8, $2::numeric, $3::timestamptz, $4::bytea, $5::text, $6::int8,
			$7::bool, $8::float8, DATE '2024-03-01', '{"a":[1,2]}'::jsonb, ARRAY[1,2,3]`,
			int64(9223372036854775807), "12345678901234567890.123456789", ts, blob, nil, nil, true, 0.1).
			Scan(&i8, &num, &at, &b, &null, &nullI, &ok, &f, &day, &js, &arr)
		if err != nil {
			t.Fatal(err)
		}
		if i8 != 9223372036854775807 {
			t.Errorf("int8 = %d", i8)
		}
		if num != "12345678901234567890.123456789" {
			t.Errorf("numeric = %s", num)
		}
		if !at.Equal(ts) {
			t.Errorf("timestamptz = %v, want %v", at, ts)
		}
		if !bytes.Equal(b, blob) {
			t.Errorf("bytea = %v, want %v", b, blob)
		}
		if null.Valid || nullI != nil {
			t.Errorf("NULLs = %v %v", null, nullI)
		}
		if !ok || f != 0.1 {
			t.Errorf("bool, float8 = %v %v", ok, f)
		}
		if day.Format("2006-01-02") != "2024-03-01" {
			t.Errorf("date = %v", day)
		}
		if string(js) != `{"a":[1,2]}` && string(js) != `{"a": [1, 2]}` {
			t.Errorf("jsonb = %s", js)
		}
		if arr != "[1,2,3]" {
			t.Errorf("int[] = %s", arr)
		}
		// A parameter written and read back through a table.
		mustExec("UPDATE acct SET note = $1, at = $2 WHERE id = 1", blob, ts)
		var nb []byte
		var nat time.Time
		if err := db.QueryRowContext(ctx, "SELECT note, at FROM acct WHERE id = $1", 1).Scan(&nb, &nat); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(nb, blob) || !nat.Equal(ts) {
			t.Errorf("stored bytea/timestamptz = %v %v", nb, nat)
		}
	})

	t.Run("ColumnTypes", func(t *testing.T) {
		rows, err := db.QueryContext(ctx, "SELECT id, balance, owner FROM acct ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cts {
			names = append(names, c.Name()+":"+c.DatabaseTypeName())
		}
		if strings.Join(names, ",") != "id:INT8,balance:NUMERIC,owner:TEXT" {
			t.Errorf("column types = %v", names)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Err() != nil || n != 2 {
			t.Errorf("rows = %d, %v", n, rows.Err())
		}
	})

	t.Run("TxCommitRollbackIsolation", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		if err != nil {
			t.Fatal(err)
		}
		var level string
		if err := tx.QueryRowContext(ctx, "SHOW transaction_isolation").Scan(&level); err != nil || level != "serializable" {
			t.Fatalf("isolation = %q, %v", level, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE acct SET balance = balance - 10 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		var outside, inside string
		if err := db.QueryRowContext(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&outside); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&inside); err != nil {
			t.Fatal(err)
		}
		if outside != "100.00" || inside != "90.00" {
			t.Fatalf("outside %s, inside %s; want 100.00 and 90.00", outside, inside)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("rollback after commit: %v", err)
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM acct"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil || n != 2 {
			t.Fatalf("after rollback: %d rows, %v", n, err)
		}
		// Read-only transactions refuse writes.
		tx, err = db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM acct"); err == nil || !strings.Contains(err.Error(), "25006") {
			t.Fatalf("write in a read-only transaction: %v", err)
		}
		_ = tx.Rollback()
		// A failed statement fails the transaction until rollback.
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "SELECT 1/0"); err == nil {
			t.Fatal("1/0 succeeded")
		}
		if _, err := tx.ExecContext(ctx, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "25P02") {
			t.Fatalf("statement after a failure: %v", err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PreparedAndTxStmt", func(t *testing.T) {
		ins, err := db.PrepareContext(ctx, "INSERT INTO acct (id, owner, balance) VALUES ($1, $2, $3)")
		if err != nil {
			t.Fatal(err)
		}
		defer ins.Close()
		for i := int64(10); i < 13; i++ {
			if _, err := ins.ExecContext(ctx, i, "p", "1"); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.StmtContext(ctx, ins).ExecContext(ctx, 13, "p", "1"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM acct WHERE owner = 'p'").Scan(&n); err != nil || n != 3 {
			t.Fatalf("prepared inserts: %d, %v; want 3 (the fourth rolled back)", n, err)
		}
	})

	t.Run("OneConnectionReusedAfterTx", func(t *testing.T) {
		db.SetMaxOpenConns(1)
		defer db.SetMaxOpenConns(0)
		for i := 0; i < 3; i++ {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE acct SET balance = balance + 1 WHERE id = 2"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := db.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
		}
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		var bal string
		if err := db.QueryRowContext(ctx, "SELECT balance FROM acct WHERE id = 2").Scan(&bal); err != nil || bal != "53.50" {
			t.Fatalf("balance = %s, %v", bal, err)
		}
	})

	t.Run("ContextDeadline", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if _, err := db.ExecContext(cctx, "SELECT pg_sleep(5)"); err == nil {
			t.Fatal("pg_sleep(5) finished within a 500ms deadline")
		}
	})
}
