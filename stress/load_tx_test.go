package stress

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// TestTxLoad runs clients that each do short interactive transactions
// over HTTP (begin; SELECT … FOR UPDATE; UPDATE; INSERT; commit) against
// one bitd. Every acknowledged commit must be there exactly once, nothing
// else may be (a transaction whose commit failed left no row), the counter
// rows must agree with the log, and afterwards no backend connection may
// be left in a transaction. A refused begin (429) waits for Retry-After.
// make test: 16 clients for 5 s; make stress: 200 for 60 s;
// BITKIT_TX_LOAD_CLIENTS and BITKIT_TX_LOAD_SECONDS override both.
func TestTxLoad(t *testing.T) {
	clients, dur := loadSize("BITKIT_TX_LOAD", 16, 5*time.Second)
	tried(t, fmt.Sprintf("%d clients, short interactive transactions for %s", clients, dur))
	s := start(t, bitdtest.Args("--pool-max-conns", "20", "--tx-max-per-database", "16", "--tx-max-per-principal", "1000"))
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "txload", true)
	const counters = 10
	c.mustQuery(t, db, "CREATE TABLE ctr (id int PRIMARY KEY, v int8 NOT NULL)")
	c.mustQuery(t, db, "INSERT INTO ctr SELECT g, 0 FROM generate_series(1, "+strconv.Itoa(counters)+") g")
	c.mustQuery(t, db, "CREATE TABLE log (client int, seq int, ctr int, PRIMARY KEY (client, seq))")
	pgdb := c.mustQuery(t, db, "SELECT current_database()").Body["data"].([]any)[0].([]any)[0].(string)

	var (
		acked                    = make([][]int, clients)
		begins, refused, aborted atomic.Int64
		unexpected               atomic.Int64
		firstErr                 atomic.Value
		retryLess                atomic.Int64
		latMu                    sync.Mutex
		lat                      []time.Duration
	)
	fail := func(format string, a ...any) {
		unexpected.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Sprintf(format, a...))
	}
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(s.Endpoint, s.APIKey)
			for seq := 0; time.Now().Before(stop); seq++ {
				t0 := time.Now()
				r, err := cl.doE("POST", "/v2beta/tx", map[string]any{"database_name": db, "idle_timeout_ms": 5000})
				if err != nil {
					fail("begin: %v", err)
					return
				}
				if r.Status == 429 || r.Status == 503 {
					refused.Add(1)
					ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
					if ra <= 0 {
						retryLess.Add(1)
						ra = 1
					}
					time.Sleep(time.Duration(ra)*time.Second/2 + rand.N(time.Duration(ra)*time.Second))
					continue
				}
				if r.Status != 201 {
					fail("begin: %d %s", r.Status, r.Raw)
					return
				}
				begins.Add(1)
				id := r.str("tx_id")
				k := rand.N(counters) + 1
				ok := true
				for _, q := range []struct {
					sql    string
					params []any
				}{
					{"SELECT v FROM ctr WHERE id = $1 FOR UPDATE", []any{k}},
					{"UPDATE ctr SET v = v + 1 WHERE id = $1", []any{k}},
					{"INSERT INTO log VALUES ($1, $2, $3)", []any{i, seq, k}},
				} {
					r, err := cl.doE("POST", "/v2beta/query", map[string]any{"tx_id": id, "query_string": q.sql, "params": q.params})
					if err != nil || r.Status != 200 {
						fail("statement %q: %v %d %s", q.sql, err, r.Status, r.Raw)
						ok = false
						break
					}
				}
				end := "/commit"
				if !ok {
					end = "/rollback"
				}
				r, err = cl.doE("POST", "/v2beta/tx/"+id+end, nil)
				switch {
				case err != nil:
					fail("%s: %v", end, err)
					return
				case ok && r.Status == 200:
					acked[i] = append(acked[i], seq)
					latMu.Lock()
					lat = append(lat, time.Since(t0))
					latMu.Unlock()
				case ok:
					aborted.Add(1)
					fail("commit: %d %s", r.Status, r.Raw)
				}
			}
		}()
	}
	wg.Wait()
	if n := unexpected.Load(); n > 0 {
		t.Errorf("%d unexpected answers; the first: %v", n, firstErr.Load())
	}
	if n := retryLess.Load(); n > 0 {
		t.Errorf("%d refusals without Retry-After", n)
	}

	// Every acknowledged commit is there once, nothing else is.
	r := c.mustQuery(t, db, "SELECT client, seq FROM log ORDER BY client, seq")
	got := make([][]int, clients)
	for _, row := range r.Body["data"].([]any) {
		cs := row.([]any)
		ci, _ := strconv.Atoi(fmt.Sprint(cs[0]))
		sq, _ := strconv.Atoi(fmt.Sprint(cs[1]))
		got[ci] = append(got[ci], sq)
	}
	total := 0
	for i := range clients {
		total += len(acked[i])
		if !slices.Equal(got[i], acked[i]) {
			t.Errorf("client %d: rows %v, acknowledged commits %v", i, got[i], acked[i])
		}
	}
	sum := c.mustQuery(t, db, "SELECT sum(v)::int8 FROM ctr").Body["data"].([]any)[0].([]any)[0]
	if fmt.Sprint(sum) != strconv.Itoa(total) {
		t.Errorf("counters sum to %v, %d commits acknowledged", sum, total)
	}
	if total == 0 {
		t.Fatal("no transaction committed")
	}

	// No backend is left in a transaction, and the tenant's backends are
	// within the pools' bound.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var inTx, backends int
	_ = testwait.Wait(ctx, time.Minute, func() error { // bounded by ctx
		if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state LIKE 'idle in transaction%' OR xact_start IS NOT NULL AND pid <> pg_backend_pid()), count(*)
			FROM pg_stat_activity WHERE datname = $1`, pgdb).Scan(&inTx, &backends); err != nil {
			t.Fatal(err)
		}
		if inTx != 0 {
			return errors.New("backends in a transaction")
		}
		return nil
	})
	if inTx != 0 {
		t.Errorf("%d backend(s) still in a transaction after the load", inTx)
	}
	if backends > 20 {
		t.Errorf("%d backends on the database after the load, more than the pool's 20", backends)
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	outcome := fmt.Sprintf("%d commits (%.0f/s), %d begins refused with 429 and retried, p50 %s, p99 %s per transaction; "+
		"every acknowledged commit present once, none other; counters agree; %d backends afterwards, none in a transaction",
		total, float64(total)/dur.Seconds(), refused.Load(), p50.Round(time.Millisecond), p99.Round(time.Millisecond), backends)
	record(t, fmt.Sprintf("%d clients, short interactive transactions (begin, SELECT FOR UPDATE, UPDATE, INSERT, commit) for %s", clients, dur), outcome)
	t.Log(outcome)
	scanLogs(t, s)
}
