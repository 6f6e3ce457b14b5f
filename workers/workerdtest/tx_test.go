//go:build !js

package workerdtest_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/workers/workerdtest"
)

// kvStore is the store behind the Worker's KV binding in workerd (which
// turns get/put/delete into HTTP requests to it), counting its reads and writes.
type kvStore struct {
	mu         sync.Mutex
	values     map[string]string
	gets, puts int
}

func (kv *kvStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		kv.gets++
		v, ok := kv.values[key]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, v)
	case http.MethodPut:
		kv.puts++
		b, _ := io.ReadAll(r.Body)
		kv.values[key] = string(b)
	case http.MethodDelete:
		delete(kv.values, key)
	default:
		http.Error(w, "unexpected method", http.StatusMethodNotAllowed)
	}
}

func (kv *kvStore) snapshot() (gets, puts int, values map[string]string) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	values = map[string]string{}
	for k, v := range kv.values {
		values[k] = v
	}
	return kv.gets, kv.puts, values
}

// TestWorkerTransactionAcrossRequests: the Worker, configured with a
// username and password and a KV namespace for the token, holds an
// interactive transaction across requests, each served by a fresh
// instance: request 1 begins it, the next read a balance and write both
// rows in it by tx_id (invisible outside until the commit), the last
// commits; another transaction is rolled back by its own request. Over all
// of them bitd sees exactly one login (counted in its access log): the
// other requests take the token from KV, which never holds the password.
func TestWorkerTransactionAcrossRequests(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	const password = "worker-kv-Pa55word"
	user := fmt.Sprintf("wkv%d", time.Now().UnixNano()%1e9)
	key := s.NewUser(t, user, password)
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateDatabase(t.Context(), core.CreateDatabaseRequest{Name: bitdtest.UniqueName("wtx")})
	if err != nil {
		t.Fatal(err)
	}
	db := created.Name
	if _, err := c.Batch(t.Context(), core.BatchRequest{Database: db, Queries: []core.Statement{
		{SQL: "create table acct (id int primary key, balance int not null)"},
		{SQL: "insert into acct values (1, 100), (2, 0)"},
	}}); err != nil {
		t.Fatal(err)
	}
	balances := func() string {
		t.Helper()
		r, err := c.Query(t.Context(), db, "select string_agg(balance::text, ',' order by id) from acct")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(r.Rows[0][0])
	}

	store := &kvStore{values: map[string]string{}}
	kvSrv := httptest.NewServer(store)
	t.Cleanup(kvSrv.Close)
	token := workerdtest.NewToken(t)
	w := workerdtest.Start(t,
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: s.Endpoint},
		workerdtest.Binding{Name: "BITKIT_USERNAME", Value: user},
		workerdtest.Binding{Name: "BITKIT_PASSWORD", Value: password},
		workerdtest.Binding{Name: "BITKIT_WORKER_TOKEN", Value: token},
		workerdtest.Binding{Name: "BITKIT_TIMEOUT_MS", Value: "30000"},
		workerdtest.Binding{Name: "BITKIT_TOKEN_KV", KV: strings.TrimPrefix(kvSrv.URL, "http://")},
	)
	bearer := "Bearer " + token
	call := func(path, body string, want int) answer {
		t.Helper()
		a := post(t, w.URL+path, bearer, body)
		if a.status != want {
			t.Fatalf("POST %s %s: %d %s, want %d\nworkerd log:\n%s", path, body, a.status, a.body, want, w.Logs())
		}
		return a
	}

	// Request 1 begins; its answer names the transaction.
	a := call("/tx", fmt.Sprintf(`{"database": %q, "isolation_level": "repeatable read"}`, db), http.StatusCreated)
	txID, _ := a.m["tx_id"].(string)
	if txID == "" || a.m["database"] != db {
		t.Fatalf("POST /tx answered %s", a.body)
	}
	// Request 2 reads in it; the Worker decides; requests 3 and 4 write.
	a = call("/query", fmt.Sprintf(`{"database": %q, "query": "select balance from acct where id = $1 for update", "params": [1], "tx_id": %q}`, db, txID), http.StatusOK)
	bal := fmt.Sprint(a.m["data"].([]any)[0].([]any)[0])
	if bal != "100" {
		t.Fatalf("balance read in the transaction = %s, want 100", bal)
	}
	call("/query", fmt.Sprintf(`{"database": %q, "query": "update acct set balance = balance - 40 where id = 1", "tx_id": %q}`, db, txID), http.StatusOK)
	call("/query", fmt.Sprintf(`{"database": %q, "query": "update acct set balance = balance + 40 where id = 2", "tx_id": %q}`, db, txID), http.StatusOK)
	a = call("/query", fmt.Sprintf(`{"database": %q, "query": "select string_agg(balance::text, ',' order by id) from acct", "tx_id": %q}`, db, txID), http.StatusOK)
	if got := fmt.Sprint(a.m["data"].([]any)[0].([]any)[0]); got != "60,40" {
		t.Errorf("balances inside the transaction = %s, want 60,40", got)
	}
	if got := balances(); got != "100,0" {
		t.Errorf("balances outside before the commit = %s, want 100,0 (the writes must wait for the commit)", got)
	}
	// The last request commits.
	a = call("/tx/"+url.PathEscape(txID)+"/commit", "", http.StatusOK)
	if a.m["status"] != "committed" {
		t.Errorf("commit answered %s", a.body)
	}
	if got := balances(); got != "60,40" {
		t.Errorf("balances after the commit = %s, want 60,40", got)
	}
	// The transaction is over: its tx_id is refused.
	a = call("/query", fmt.Sprintf(`{"database": %q, "query": "select 1", "tx_id": %q}`, db, txID), http.StatusNotFound)
	if a.m["code"] != "transaction_not_found" {
		t.Errorf("a statement after the commit answered %s", a.body)
	}

	// Another one, rolled back by its own request.
	a = call("/tx", fmt.Sprintf(`{"database": %q}`, db), http.StatusCreated)
	txID2, _ := a.m["tx_id"].(string)
	call("/query", fmt.Sprintf(`{"database": %q, "query": "update acct set balance = 0", "tx_id": %q}`, db, txID2), http.StatusOK)
	a = call("/tx/"+url.PathEscape(txID2)+"/rollback", "", http.StatusOK)
	if a.m["status"] != "rolled_back" {
		t.Errorf("rollback answered %s", a.body)
	}
	if got := balances(); got != "60,40" {
		t.Errorf("balances after the rollback = %s, want 60,40", got)
	}
	// A bad begin is the caller's error, named.
	a = call("/tx", fmt.Sprintf(`{"database": %q, "isolation_level": "chaos"}`, db), http.StatusBadRequest)
	if !strings.Contains(string(a.body), "isolation_level") {
		t.Errorf("a bad isolation level answered %s", a.body)
	}

	// One login for the eleven requests to bitd; the token came from KV.
	logins := func() int {
		n := 0
		for _, line := range strings.Split(s.Logs(), "\n") {
			if strings.Contains(line, "path=/auth/v1/login") && strings.Contains(line, "status=200") {
				n++
			}
		}
		return n
	}
	// bitd writes its access log in batches: wait for the first login line
	// (the check below reports its absence).
	_ = testwait.Wait(t.Context(), 5*time.Second, func() error {
		if logins() < 1 {
			return errors.New("no login logged yet")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // and a second login, were there one, would be logged by now
	if n := logins(); n != 1 {
		t.Errorf("bitd saw %d logins for the Worker's requests, want 1 (the token cached in KV)", n)
	}
	gets, puts, values := store.snapshot()
	if gets < 10 || puts < 1 || len(values) != 1 {
		t.Errorf("KV saw %d reads and %d writes and holds %d keys; want a read per request, a write for the login, one key", gets, puts, len(values))
	}
	for k, v := range values {
		if strings.Contains(v, password) || strings.Contains(k, password) || !strings.Contains(v, "access_token") {
			t.Errorf("KV holds %q = %q: want the token, never the password", k, v)
		}
	}
}
