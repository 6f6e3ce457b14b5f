package query_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/query"
)

// slowDoneTx is a TxSource whose transaction (a real one, on a connection
// of the owner's pool) gives itself back slowly: Done ends the lease's
// context, as package txn's does, and then lingers, so that anything that
// context's end sets off has run before the handler answers.
type slowDoneTx struct{ e *env }

func (s slowDoneTx) Use(_ http.ResponseWriter, r *http.Request, _ string, _ []byte) (*query.TxLease, bool, error) {
	tg, err := s.e.res.Resolve(r.Context(), "acct/owner")
	if err != nil {
		return nil, false, err
	}
	conn, err := tg.Pool.Acquire(r.Context())
	if err != nil {
		return nil, false, err
	}
	if _, err := conn.Exec(r.Context(), "BEGIN"); err != nil {
		conn.Release()
		return nil, false, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once // Done may be called again (TxLease)
	return &query.TxLease{Conn: conn, Target: tg, Ctx: ctx, Done: func() {
		once.Do(func() {
			cancel()
			time.Sleep(50 * time.Millisecond) // the point: let a watcher of ctx run first
			_, _ = conn.Exec(context.Background(), "ROLLBACK")
			conn.Release()
		})
	}}, false, nil
}

// TestTxRefusalAfterDone: a statement refused in a transaction answers its
// own error even though giving the transaction back (before the answer is
// written) ends the lease's context; it must not read as the client's
// going away (499).
func TestTxRefusalAfterDone(t *testing.T) {
	e := setup(t)
	h := query.New(query.Config{Tx: slowDoneTx{e}}, e.res, nil)
	srv := httptest.NewServer(mux(h))
	defer srv.Close()
	for _, path := range []string{"/v2beta/query", "/v2beta/query/batch"} {
		body := map[string]any{"tx_id": "tx1", "query_string": "SELECT 1/0"}
		if path == "/v2beta/query/batch" {
			body = map[string]any{"tx_id": "tx1", "queries": []map[string]any{{"query_string": "SELECT 1/0"}}}
		}
		er := failQuery(t, srv.URL, path, body, http.StatusBadRequest)
		if er.SQLState != "22012" {
			t.Errorf("%s: %+v; want the division by zero (22012)", path, er)
		}
	}
}
