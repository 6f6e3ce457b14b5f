package txn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// These tests drive real bitd processes on real PostgreSQL
// (TEST_DATABASE_URL, see internal/bitdtest).

func client(t *testing.T, endpoint, key string) *core.Client {
	t.Helper()
	c, err := core.NewClient(endpoint, core.WithAPIKey(key), core.WithRetryPolicy(core.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newDB creates a database with table t(id int primary key, v int) holding
// rows 1..n (v = 0) and returns its full name.
func newDB(t *testing.T, c *core.Client, s *bitdtest.Server, n int) string {
	t.Helper()
	name := fmt.Sprintf("tx%d", time.Now().UnixNano()%1e9)
	if _, err := c.CreateDatabase(t.Context(), core.CreateDatabaseRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	db := s.User + "/" + name
	if _, err := c.Query(t.Context(), db, fmt.Sprintf("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t SELECT g, 0 FROM generate_series(1, %d) g", n)); err != nil {
		t.Fatal(err)
	}
	return db
}

func apiErr(t *testing.T, err error) *core.APIError {
	t.Helper()
	var ae *core.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an *APIError, got %v", err)
	}
	return ae
}

func intOf(t *testing.T, r *core.Result) int64 {
	t.Helper()
	var n int64
	if len(r.Rows) != 1 {
		t.Fatalf("want one row, got %v", r.Rows)
	}
	if err := r.Scan(0, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTxCommitRollbackAndFailedState(t *testing.T) {
	s := bitdtest.Start(t)
	c := client(t, s.Endpoint, s.APIKey)
	db := newDB(t, c, s, 3)
	ctx := t.Context()

	tx, err := c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE t SET v = v + $1 WHERE id = 1", 5); err != nil {
		t.Fatal(err)
	}
	// Outside the transaction the change is not visible yet.
	if got := intOf(t, must(c.Query(ctx, db, "SELECT v FROM t WHERE id = 1"))); got != 0 {
		t.Fatalf("uncommitted write visible outside: v = %d", got)
	}
	// Inside it is, buffered, streamed and in a batch.
	if got := intOf(t, must(tx.Query(ctx, "SELECT v FROM t WHERE id = 1"))); got != 5 {
		t.Fatalf("own write not visible inside: v = %d", got)
	}
	st, err := tx.QueryStream(ctx, core.QueryRequest{SQL: "SELECT v FROM t ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []int64
	for st.Next() {
		var v int64
		if err := st.Scan(&v); err != nil {
			t.Fatal(err)
		}
		streamed = append(streamed, v)
	}
	if err := st.Close(); err != nil || fmt.Sprint(streamed) != "[5 0 0]" {
		t.Fatalf("stream in tx: %v %v", streamed, err)
	}
	rs, err := tx.Batch(ctx, []core.Statement{{SQL: "UPDATE t SET v = 7 WHERE id = 2"}, {SQL: "SELECT sum(v) FROM t"}})
	if err != nil || intOf(t, rs[1]) != 12 {
		t.Fatalf("batch in tx: %v %v", rs, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT sum(v) FROM t"))); got != 12 {
		t.Fatalf("after commit: sum = %d, want 12", got)
	}
	if _, err := tx.Query(ctx, "SELECT 1"); !errors.Is(err, core.ErrTxDone) {
		t.Fatalf("query after commit: %v, want ErrTxDone", err)
	}

	// Rollback discards.
	tx, err = c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE t SET v = 100"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT sum(v) FROM t"))); got != 12 {
		t.Fatalf("after rollback: sum = %d, want 12", got)
	}

	// A failing statement leaves the transaction failed until its end;
	// commit then rolls back and says so.
	tx, err = c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE t SET v = 1000 WHERE id = 3"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1/0")
	if ae := apiErr(t, err); ae.SQLState != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	// Every refusal answers its SQLSTATE: the transaction is given back
	// before the answer is written, and that must not read as the client's
	// going away (499), however the goroutines interleave.
	for i := range 60 {
		if i%2 == 0 {
			_, err = tx.Exec(ctx, "SELECT 1")
		} else {
			_, err = tx.Batch(ctx, []core.Statement{{SQL: "SELECT 1"}})
		}
		if ae := apiErr(t, err); ae.SQLState != "25P02" {
			t.Fatalf("statement %d in a failed transaction: %v (%s), want SQLSTATE 25P02", i, err, ae.Code)
		}
	}
	err = tx.Commit(ctx)
	if ae := apiErr(t, err); ae.StatusCode != 409 || ae.Code != "transaction_aborted" {
		t.Fatalf("commit of a failed transaction: %v", err)
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT v FROM t WHERE id = 3"))); got != 0 {
		t.Fatalf("a failed transaction committed: v = %d", got)
	}
	// Savepoints work as in PostgreSQL: a failure rolled back to one
	// leaves the transaction usable.
	tx, err = c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	must(tx.Exec(ctx, "UPDATE t SET v = 5 WHERE id = 3"))
	must(tx.Exec(ctx, "SAVEPOINT s1"))
	if _, err := tx.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("1/0 succeeded")
	}
	must(tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s1"))
	must(tx.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 3"))
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT v FROM t WHERE id = 3"))); got != 6 {
		t.Fatalf("after a savepoint rollback and commit: v = %d, want 6", got)
	}
	// Transaction control inside ends it; the next request says why.
	tx, err = c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1")
	if ae := apiErr(t, err); ae.Code != "transaction_not_found" || !strings.Contains(ae.Message, "a statement ended it") || !errors.Is(err, core.ErrTxDone) {
		t.Fatalf("after COMMIT inside: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestTxIsolationAndInTxRetry(t *testing.T) {
	s := bitdtest.Start(t)
	c := client(t, s.Endpoint, s.APIKey)
	db := newDB(t, c, s, 2)
	ctx := t.Context()

	// Repeatable read keeps its snapshot; read committed sees new commits.
	rr, err := c.Begin(ctx, db, core.TxOptions{IsolationLevel: "repeatable read"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Begin(ctx, db, core.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range []*core.Tx{rr, rc} {
		if got := intOf(t, must(tx.Query(ctx, "SELECT count(*) FROM t"))); got != 2 {
			t.Fatalf("count = %d", got)
		}
	}
	if _, err := c.Query(ctx, db, "INSERT INTO t VALUES (3, 0)"); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(rr.Query(ctx, "SELECT count(*) FROM t"))); got != 2 {
		t.Fatalf("repeatable read saw a later commit: count = %d", got)
	}
	if got := intOf(t, must(rc.Query(ctx, "SELECT count(*) FROM t"))); got != 3 {
		t.Fatalf("read committed did not see a commit: count = %d", got)
	}
	_ = rr.Rollback(ctx)
	_ = rc.Rollback(ctx)

	// Write skew under serializable: the second commit fails with 40001.
	a := must(c.Begin(ctx, db, core.TxOptions{IsolationLevel: "serializable"}))
	b := must(c.Begin(ctx, db, core.TxOptions{IsolationLevel: "serializable"}))
	must(a.Query(ctx, "SELECT sum(v) FROM t"))
	must(b.Query(ctx, "SELECT sum(v) FROM t"))
	must(a.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 1"))
	must(b.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 2"))
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	err = b.Commit(ctx)
	if !core.IsSerializationFailure(err) || apiErr(t, err).SQLState != "40001" {
		t.Fatalf("second serializable commit: %v, want SQLSTATE 40001", err)
	}

	// InTx retries it: the first attempt meets a conflicting commit.
	var attempts atomic.Int32
	err = c.InTx(ctx, db, core.TxOptions{IsolationLevel: "serializable", MaxRetries: 3}, func(tx *core.Tx) error {
		n := attempts.Add(1)
		if _, err := tx.Query(ctx, "SELECT sum(v) FROM t"); err != nil {
			return err
		}
		if n == 1 {
			err := c.InTx(ctx, db, core.TxOptions{IsolationLevel: "serializable"}, func(o *core.Tx) error {
				if _, err := o.Query(ctx, "SELECT sum(v) FROM t"); err != nil {
					return err
				}
				_, err := o.Exec(ctx, "UPDATE t SET v = v + 10 WHERE id = 2")
				return err
			})
			if err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "UPDATE t SET v = v + 100 WHERE id = 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 2 {
		t.Fatalf("InTx ran its function %d times, want 2 (one serialization failure)", attempts.Load())
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT v FROM t WHERE id = 1"))); got != 101 {
		t.Fatalf("v = %d, want 101 (one +1, one +100)", got)
	}
	// Without MaxRetries the failure comes back; a panic rolls back.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not go on")
			}
		}()
		_ = c.InTx(ctx, db, core.TxOptions{}, func(tx *core.Tx) error {
			must(tx.Exec(ctx, "UPDATE t SET v = -1"))
			panic("boom")
		})
	}()
	if got := intOf(t, must(c.Query(ctx, db, "SELECT min(v) FROM t"))); got < 0 {
		t.Fatal("a panicking InTx committed")
	}

	// Read-only refuses writes.
	ro := must(c.Begin(ctx, db, core.TxOptions{ReadOnly: true}))
	_, err = ro.Exec(ctx, "UPDATE t SET v = 0")
	if ae := apiErr(t, err); ae.SQLState != "25006" {
		t.Fatalf("write in a read-only transaction: %v, want SQLSTATE 25006", err)
	}
	_ = ro.Rollback(ctx)
	ro = must(c.Begin(ctx, db, core.TxOptions{ReadOnly: true}))
	_, err = ro.Exec(ctx, "SET TRANSACTION READ WRITE")
	if err == nil {
		t.Fatal("SET TRANSACTION READ WRITE was accepted in a read-only transaction")
	}
	_ = ro.Rollback(ctx)
}

// adminConn connects to the cluster as the test superuser.
func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestTxIdleTimeoutReleasesLocksAndConnection(t *testing.T) {
	s := bitdtest.Start(t)
	c := client(t, s.Endpoint, s.APIKey)
	db := newDB(t, c, s, 2)
	ctx := t.Context()
	pgdb := must(c.Query(ctx, db, "SELECT current_database()")).Rows[0][0].(string)
	admin := adminConn(t)
	inTx := func() (locks, sessions int) {
		t.Helper()
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE d.datname = $1 AND l.locktype = 'relation' AND l.mode = 'RowShareLock'`, pgdb).Scan(&locks); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'`, pgdb).Scan(&sessions); err != nil {
			t.Fatal(err)
		}
		return
	}

	// A client that takes a row lock and vanishes.
	tx := must(c.Begin(ctx, db, core.TxOptions{IdleTimeout: 1500 * time.Millisecond}))
	must(tx.Query(ctx, "SELECT v FROM t WHERE id = 1 FOR UPDATE"))
	if l, s := inTx(); l == 0 || s != 1 {
		t.Fatalf("while open: %d RowShareLock(s), %d session(s) idle in transaction; want some and 1", l, s)
	}
	// Another writer of the row is blocked meanwhile.
	_, err := c.Query(ctx, db, "SET lock_timeout = '200ms'; UPDATE t SET v = 1 WHERE id = 1")
	if ae := apiErr(t, err); ae.SQLState != "55P03" {
		t.Fatalf("update of a locked row: %v, want lock_not_available", err)
	}
	testwait.Eventually(t, 10*time.Second, func() error {
		if l, s := inTx(); l != 0 || s != 0 {
			return fmt.Errorf("after the idle timeout: %d lock(s), %d session(s) idle in transaction", l, s)
		}
		return nil
	})
	if _, err := c.Query(ctx, db, "SET lock_timeout = '2s'; UPDATE t SET v = 1 WHERE id = 1"); err != nil {
		t.Fatalf("the row lock outlived the transaction: %v", err)
	}
	_, err = tx.Query(ctx, "SELECT 1")
	if ae := apiErr(t, err); ae.StatusCode != 404 || !strings.Contains(ae.Message, "idle timeout") {
		t.Fatalf("use after the idle timeout: %v", err)
	}
	// Rolling back a transaction the server ended is not an error.
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, core.ErrTxDone) {
		t.Fatal(err)
	}
}

func TestTxOtherPrincipalAndForgedID(t *testing.T) {
	s := bitdtest.Start(t)
	c := client(t, s.Endpoint, s.APIKey)
	db := newDB(t, c, s, 1)
	ctx := t.Context()
	// Mallory may read the database (it is shared with her), but not use
	// alice's transaction.
	mkey := s.NewUser(t, bitdtest.UniqueName("mallory"), "")
	mallory := client(t, s.Endpoint, mkey)
	tx := must(c.Begin(ctx, db, core.TxOptions{}))
	must(tx.Exec(ctx, "UPDATE t SET v = 42"))
	for _, path := range []string{"/v2beta/query", "/v2beta/tx/" + tx.ID() + "/commit", "/v2beta/tx/" + tx.ID() + "/rollback"} {
		code, body := post(t, s.Endpoint+path, mkey, fmt.Sprintf(`{"tx_id":%q,"query_string":"SELECT 1"}`, tx.ID()))
		if code != 404 || !strings.Contains(body, "transaction_not_found") {
			t.Fatalf("%s with another principal's tx_id: %d %s", path, code, body)
		}
	}
	_ = mallory
	// A forged id (another MAC) is not found either, and not forwarded.
	forged := tx.ID()[:len(tx.ID())-4] + "AAAA"
	code, body := post(t, s.Endpoint+"/v2beta/query", s.APIKey, fmt.Sprintf(`{"tx_id":%q,"query_string":"SELECT 1"}`, forged))
	if code != 404 {
		t.Fatalf("forged tx_id: %d %s", code, body)
	}
	// The transaction is intact.
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT v FROM t"))); got != 42 {
		t.Fatalf("v = %d", got)
	}

	// The peers' spellings: booleans as strings, the level with an underscore.
	code, body = post(t, s.Endpoint+"/v2beta/tx", s.APIKey, fmt.Sprintf(`{"database_name":%q,"read_only":"true","isolation_level":"repeatable_read"}`, db))
	var begun struct {
		TxID string `json:"tx_id"`
	}
	if err := json.Unmarshal([]byte(body), &begun); code != 201 || err != nil || begun.TxID == "" {
		t.Fatalf("begin with read_only \"true\": %d %s", code, body)
	}
	code, body = post(t, s.Endpoint+"/v2beta/query", s.APIKey, fmt.Sprintf(`{"tx_id":%q,"query_string":"UPDATE t SET v = 1"}`, begun.TxID))
	if code == 200 || !strings.Contains(body, "25006") {
		t.Fatalf("a write in a read_only \"true\" transaction: %d %s", code, body)
	}
	post(t, s.Endpoint+"/v2beta/tx/"+begun.TxID+"/rollback", s.APIKey, `{}`)
	code, body = post(t, s.Endpoint+"/v2beta/tx", s.APIKey, fmt.Sprintf(`{"database_name":%q,"read_only":"maybe"}`, db))
	if code != 400 || !strings.Contains(body, `"read_only"`) || !strings.Contains(body, "invalid_field") {
		t.Fatalf("read_only \"maybe\": %d %s", code, body)
	}
}

func post(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// openTxGauge reads bitd_open_transactions from s's /metrics.
func openTxGauge(t *testing.T, s *bitdtest.Server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.Env["BITKIT_METRICS_ADDR"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "bitd_open_transactions "); ok {
			return v
		}
	}
	t.Fatalf("no bitd_open_transactions in /metrics:\n%s", b)
	return ""
}

func TestTxCapsAnd429(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--tx-max-per-principal", "2", "--metrics", "127.0.0.1:0"))
	c := client(t, s.Endpoint, s.APIKey)
	db := newDB(t, c, s, 1)
	ctx := t.Context()
	a := must(c.Begin(ctx, db, core.TxOptions{}))
	b := must(c.Begin(ctx, db, core.TxOptions{}))
	if g := openTxGauge(t, s); g != "2" {
		t.Fatalf("bitd_open_transactions = %s, want 2", g)
	}
	code, body := post(t, s.Endpoint+"/v2beta/tx", s.APIKey, fmt.Sprintf(`{"database_name":%q}`, db))
	if code != 429 || !strings.Contains(body, "too_many_transactions") {
		t.Fatalf("third begin: %d %s", code, body)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", s.Endpoint+"/v2beta/tx", strings.NewReader(fmt.Sprintf(`{"database_name":%q}`, db)))
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %d %v", resp.StatusCode, resp.Header)
	}
	_ = a.Commit(ctx)
	c2 := must(c.Begin(ctx, db, core.TxOptions{}))
	_ = c2.Rollback(ctx)
	_ = b.Rollback(ctx)
	if g := openTxGauge(t, s); g != "0" {
		t.Fatalf("bitd_open_transactions = %s after every end, want 0", g)
	}
}

func TestTxRevokedKeyEndsIt(t *testing.T) {
	s := bitdtest.Start(t)
	owner := client(t, s.Endpoint, s.APIKey)
	key := must(owner.CreateAPIKey(t.Context()))
	c := client(t, s.Endpoint, key.APIKey)
	db := newDB(t, owner, s, 1)
	ctx := t.Context()
	pgdb := must(c.Query(ctx, db, "SELECT current_database()")).Rows[0][0].(string)
	admin := adminConn(t)
	tx := must(c.Begin(ctx, db, core.TxOptions{IdleTimeout: time.Minute}))
	must(tx.Exec(ctx, "UPDATE t SET v = 9"))
	if err := owner.RevokeAPIKey(ctx, key.APIKey); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, func() error {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'`, pgdb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			return errors.New("the transaction of a revoked key is still open")
		}
		return nil
	})
	if got := intOf(t, must(owner.Query(ctx, db, "SELECT v FROM t"))); got != 0 {
		t.Fatalf("the revoked key's transaction committed: v = %d", got)
	}
}

func TestTxTwoReplicas(t *testing.T) {
	a := bitdtest.Start(t, bitdtest.SharedSecret())
	b := bitdtest.Start(t, bitdtest.Replica(a))
	ca := client(t, a.Endpoint, a.APIKey)
	cb := client(t, b.Endpoint, a.APIKey)
	db := newDB(t, ca, a, 2)
	ctx := t.Context()

	// Begin on A; statements (buffered, streamed, batch) and commit on B.
	tx := must(ca.Begin(ctx, db, core.TxOptions{}))
	onB := must(cb.Begin(ctx, db, core.TxOptions{})) // a transaction B holds
	_ = onB.Rollback(ctx)
	txB := rebind(t, cb, tx)
	must(txB.Exec(ctx, "UPDATE t SET v = 1 WHERE id = 1"))
	st := must(txB.QueryStream(ctx, core.QueryRequest{SQL: "SELECT v FROM t WHERE id = 1"}))
	var v int64
	if !st.Next() || st.Scan(&v) != nil || v != 1 {
		t.Fatalf("stream through B: %v %v", v, st.Err())
	}
	st.Close()
	must(txB.Batch(ctx, []core.Statement{{SQL: "UPDATE t SET v = 2 WHERE id = 2"}}))
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(ca.Query(ctx, db, "SELECT sum(v) FROM t"))); got != 3 {
		t.Fatalf("sum = %d, want 3", got)
	}
	// Begin on B, statement on A, commit on B.
	tx = must(cb.Begin(ctx, db, core.TxOptions{}))
	must(rebind(t, ca, tx).Exec(ctx, "UPDATE t SET v = 10 WHERE id = 1"))
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := intOf(t, must(cb.Query(ctx, db, "SELECT sum(v) FROM t"))); got != 12 {
		t.Fatalf("sum = %d, want 12", got)
	}
	// Another principal through the other replica: 404.
	mkey := a.NewUser(t, bitdtest.UniqueName("mallory"), "")
	tx = must(ca.Begin(ctx, db, core.TxOptions{}))
	code, body := post(t, b.Endpoint+"/v2beta/query", mkey, fmt.Sprintf(`{"tx_id":%q,"query_string":"SELECT 1"}`, tx.ID()))
	if code != 404 {
		t.Fatalf("another principal through B: %d %s", code, body)
	}
	// A forged hop header is refused.
	req, _ := http.NewRequestWithContext(ctx, "POST", a.Endpoint+"/v2beta/tx/"+tx.ID()+"/rollback", nil)
	req.Header.Set("Authorization", "Bearer "+a.APIKey)
	req.Header.Set("X-Bitd-Tx-Hop", fmt.Sprintf("%d.AAAA", time.Now().Unix()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("forged hop: %d", resp.StatusCode)
	}
	if err := rebind(t, cb, tx).Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// rebind returns tx as seen by another client (another replica): the same
// tx_id, sent to c's endpoint.
func rebind(t *testing.T, c *core.Client, tx *core.Tx) *core.Tx {
	t.Helper()
	return c.ResumeTx(tx.Database(), tx.ID())
}

func TestTxLifetimeAndDeletedDatabase(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--tx-max-lifetime", "2s"))
	c := client(t, s.Endpoint, s.APIKey)
	db := newDB(t, c, s, 1)
	ctx := t.Context()
	// The lifetime ends a transaction even while a statement runs.
	tx := must(c.Begin(ctx, db, core.TxOptions{IdleTimeout: time.Minute}))
	if time.Until(tx.ExpiresAt()) > 3*time.Second {
		t.Fatalf("expires_at %v is not 2s away", tx.ExpiresAt())
	}
	must(tx.Exec(ctx, "UPDATE t SET v = 1"))
	t0 := time.Now()
	_, err := tx.Exec(ctx, "SELECT pg_sleep(30)")
	if err == nil || time.Since(t0) > 20*time.Second {
		t.Fatalf("a statement outlived the transaction's lifetime: %v after %s", err, time.Since(t0))
	}
	if ae := apiErr(t, err); ae.StatusCode != http.StatusConflict || ae.Code != "transaction_ended" || !strings.Contains(ae.Message, "lifetime") {
		t.Fatalf("the statement the lifetime cut: %v (%d %s); want 409 transaction_ended naming the lifetime", err, ae.StatusCode, ae.Code)
	}
	if !errors.Is(err, core.ErrTxDone) {
		t.Fatalf("the statement the lifetime cut: %v; want core.ErrTxDone wrapping the answer", err)
	}
	if _, err = tx.Exec(ctx, "SELECT 1"); !errors.Is(err, core.ErrTxDone) {
		t.Fatalf("after the lifetime: %v; want core.ErrTxDone", err)
	}
	if got := intOf(t, must(c.Query(ctx, db, "SELECT v FROM t"))); got != 0 {
		t.Fatalf("the expired transaction committed: v = %d", got)
	}
	// Deleting the database ends its transactions.
	tx = must(c.Begin(ctx, db, core.TxOptions{IdleTimeout: time.Minute}))
	must(tx.Exec(ctx, "UPDATE t SET v = 2"))
	if err := c.DeleteDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1")
	if ae := apiErr(t, err); ae.Code != "transaction_not_found" || !strings.Contains(ae.Message, "deleted") {
		t.Fatalf("after deleting the database: %v", err)
	}
}
