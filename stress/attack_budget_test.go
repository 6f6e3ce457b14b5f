package stress

// The connection budget: one tenant tries to take every PostgreSQL
// connection, over the wire proxy (idle sessions across many of its
// databases) and over HTTP alone (concurrent long queries). bitd's
// connection budget refuses the attacker once its account holds its share,
// and no one else.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// budgetArgs start bitd with a small connection budget, so that the attack
// needs few connections: 40 in total, 10 per account, 4 databases per
// account.
var budgetArgs = bitdtest.Args("--max-backend-conns", "40", "--max-backend-conns-per-account", "10",
	"--max-databases-per-account", "4")

// createDBs creates databases for c until the server refuses one (at most
// limit+1 tries) and returns the names created and the refusal.
func createDBs(t *testing.T, c *client, prefix string, limit int) ([]string, result) {
	t.Helper()
	var names []string
	for i := range limit + 1 {
		r := c.do(t, "POST", "/v2beta/db/", map[string]any{"name": fmt.Sprintf("%s%d", prefix, i), "is_private": true})
		if r.Status != 201 && r.Status != 200 {
			return names, r
		}
		names = append(names, r.str("name"))
	}
	t.Fatalf("%d databases created, the cap is %d", len(names), limit)
	return nil, result{}
}

// wantTooManyConns checks an HTTP answer refused by the connection budget
// for the caller's account.
func wantTooManyConns(t *testing.T, r result, what string) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.str("code") != "too_many_connections" ||
		!strings.Contains(r.str("error"), "of 10 database connections in use") || r.str("sqlstate") != "53300" ||
		r.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d %s, want 429 too_many_connections naming the share of 10, with Retry-After", what, r.Status, r.Raw)
	}
}

// TestAttackWireConnections: the attacker creates databases up to the
// per-account cap (the next is refused with a clear error), then opens idle
// wire sessions round the four until refused: FATAL 53300 naming its
// share, while its share is at most 10. Meanwhile another tenant's HTTP
// select 1 and a new wire session work; the attacker's own HTTP query is
// refused with 429, and works again once its sessions are closed.
func TestAttackWireConnections(t *testing.T) {
	t.Parallel()
	s := start(t, budgetArgs)
	needWire(t, s)
	attacker := newClient(s.Endpoint, s.APIKey)
	victim, victimKey := otherUser(t, s, "victim")
	vdb := victim.createDB(t, "vwire", true)

	dbs, refused := createDBs(t, attacker, "flood", 4)
	if len(dbs) != 4 || refused.Status != http.StatusConflict || refused.str("code") != "too_many_databases" ||
		!strings.Contains(refused.str("error"), "already has 4 databases") {
		t.Fatalf("database past the cap: %d created, then %d %s; want 4, then 409 too_many_databases", len(dbs), refused.Status, refused.Raw)
	}
	record(t, "one account creates databases past --max-databases-per-account 4", "5th refused: 409 too_many_databases, naming the cap")

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var sessions []*pgx.Conn
	defer func() {
		for _, c := range sessions {
			c.Close(context.Background())
		}
	}()
	var refusal *pgconn.PgError
	for i := 0; i < 40 && refusal == nil; i++ {
		c, err := proxyConnect(ctx, s.PGAddr, dbs[i%len(dbs)], s.APIKey)
		if err != nil {
			if !errors.As(err, &refusal) {
				t.Fatalf("wire session %d: %v, want a PostgreSQL error", i+1, err)
			}
			break
		}
		sessions = append(sessions, c)
	}
	if refusal == nil || refusal.Code != "53300" || refusal.Severity != "FATAL" ||
		!strings.Contains(refusal.Message, "of 10 database connections in use") || !strings.Contains(refusal.Message, "close idle connections") {
		t.Fatalf("after %d idle sessions: %v, want FATAL 53300 naming the account's share of 10", len(sessions), refusal)
	}
	if len(sessions) == 0 || len(sessions) > 10 {
		t.Fatalf("the attacker held %d wire sessions before the refusal, want 1 to 10 (its share)", len(sessions))
	}
	record(t, "one account opens idle wire sessions across its 4 databases until refused",
		fmt.Sprintf("refused after %d (share 10 of 40): FATAL 53300 naming the share", len(sessions)))

	if r := victim.query(t, vdb, "select 1 as one"); r.Status != 200 {
		t.Fatalf("victim's HTTP select 1 while the attacker holds its share: %d %s", r.Status, r.Raw)
	}
	vc, err := proxyConnect(ctx, s.PGAddr, vdb, victimKey)
	if err != nil {
		t.Fatalf("victim's new wire session while the attacker holds its share: %v", err)
	}
	var one int
	if err := vc.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("victim's wire select 1: %d, %v", one, err)
	}
	vc.Close(ctx)
	record(t, "another tenant while the attacker holds its wire share", "HTTP select 1: 200; new wire session: works")

	wantTooManyConns(t, attacker.query(t, dbs[0], "select 1"), "the attacker's HTTP query at its share")
	record(t, "the attacker's HTTP query while its wire sessions hold its share", "429 too_many_connections, Retry-After")

	// A job of the attacker's account waits for a slot instead of failing.
	if r := attacker.query(t, dbs[2], "select 1"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("attacker's query before the import: %d %s, want 429", r.Status, r.Raw)
	}
	imp := attacker.importStart(t, dbs[2], "t", csvRows(3), "")
	if imp.Status != http.StatusAccepted || imp.str("id") == "" {
		t.Fatalf("import while the account holds its share: %d %s, want 202", imp.Status, imp.Raw)
	}
	testwait.Eventually(t, 2*time.Minute, func() error {
		if !strings.Contains(s.Logs(), "job postponed: its account has no database connection left") {
			return errors.New("the import job was not postponed by the connection budget (no log line)")
		}
		return nil
	})
	if r := attacker.do(t, "GET", "/v2beta/import/"+imp.str("id"), nil); r.str("state") == "FAILED" || r.str("state") == "DONE" {
		t.Fatalf("import job while its account has no slot: %s, want it waiting", r.Raw)
	}

	for _, c := range sessions {
		c.Close(ctx)
	}
	sessions = nil
	if r := attacker.waitJob(t, "import", imp.str("id"), 2*time.Minute); r.str("state") != "DONE" {
		t.Fatalf("postponed import after the sessions closed: %s, want DONE", r.Raw)
	}
	record(t, "an import of the attacker's account while its share is full", "postponed (snoozed, not failed); DONE once its sessions closed")
	// The proxy frees the slots as it sees the sessions end.
	testwait.Eventually(t, time.Minute, func() error {
		r := attacker.query(t, dbs[1], "select 1")
		if r.Status == 200 {
			return nil
		}
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("attacker's query after closing its sessions: %d %s", r.Status, r.Raw)
		}
		return fmt.Errorf("attacker's query after closing its sessions: %d %s", r.Status, r.Raw)
	})
}

// TestAttackHTTPConnections: the attacker runs many concurrent long
// queries on three of its databases over HTTP alone. Past its share they
// get 429 too_many_connections; another tenant's select 1 answers 200
// during the attack and right after it, and the attacker's own query on
// another database works right after it too (its idle connections are
// reclaimed instead of waiting for the pool idle timeout).
func TestAttackHTTPConnections(t *testing.T) {
	t.Parallel()
	s := start(t, budgetArgs)
	attacker := newClient(s.Endpoint, s.APIKey)
	victim, _ := otherUser(t, s, "victim")
	vdb := victim.createDB(t, "vhttp", true)
	dbs := []string{attacker.createDB(t, "sleep0", true), attacker.createDB(t, "sleep1", true), attacker.createDB(t, "sleep2", true)}

	const perDB = 12
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		codes   = map[int]int{}
		bad     []string
		refused = make(chan struct{})
		once    sync.Once
	)
	for i := range len(dbs) * perDB {
		wg.Go(func() {
			r, err := attacker.doE("POST", "/v2beta/query", map[string]any{"database_name": dbs[i%len(dbs)], "query_string": "select pg_sleep(8)"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				bad = append(bad, err.Error())
				return
			}
			codes[r.Status]++
			switch r.Status {
			case 200:
			case http.StatusTooManyRequests:
				if r.str("code") != "too_many_connections" || !strings.Contains(r.str("error"), "of 10 database connections in use") {
					bad = append(bad, string(r.Raw))
				}
				once.Do(func() { close(refused) })
			default:
				bad = append(bad, fmt.Sprintf("%d %s", r.Status, r.Raw))
			}
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-refused:
	case <-allDone:
		t.Fatalf("no attacker query was refused: %v %v", codes, bad)
	}
	if r := victim.query(t, vdb, "select 1 as one"); r.Status != 200 {
		t.Fatalf("victim's select 1 during the attack: %d %s", r.Status, r.Raw)
	}
	<-allDone
	if len(bad) > 0 {
		t.Fatalf("unexpected attacker answers: %v", bad)
	}
	if codes[200] == 0 || codes[http.StatusTooManyRequests] == 0 || codes[200]+codes[http.StatusTooManyRequests] != len(dbs)*perDB {
		t.Fatalf("attacker answers %v: want only 200s and 429s, some of each", codes)
	}
	record(t, fmt.Sprintf("one account runs %d concurrent pg_sleep queries over HTTP on 3 of its databases", len(dbs)*perDB),
		fmt.Sprintf("%d ran, %d refused with 429 too_many_connections (share 10 of 40)", codes[200], codes[http.StatusTooManyRequests]))

	if r := victim.query(t, vdb, "select 1 as one"); r.Status != 200 {
		t.Fatalf("victim's select 1 right after the attack: %d %s", r.Status, r.Raw)
	}
	// The attacker's pools keep up to 10 idle connections (its whole
	// share); a query on a database with none reclaims them at once.
	for _, db := range dbs {
		if r := attacker.query(t, db, "select 1 as one"); r.Status != 200 {
			t.Fatalf("attacker's select 1 on %s right after the attack: %d %s", db, r.Status, r.Raw)
		}
	}
	record(t, "another tenant during and right after the HTTP attack", "select 1: 200 both times (no recovery window)")
}
