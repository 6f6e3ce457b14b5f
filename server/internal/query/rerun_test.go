package query_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/query"
	"github.com/jackc/pgx/v5/pgconn"
)

// rerunError is what quota.Explain makes of a permission error on a
// database with a storage limit that is not frozen when it looks
// (quota.ThawedError): a refusal that may belong to a thaw that ended
// between the statement and the look.
type rerunError struct{ err error }

func (e *rerunError) Error() string { return e.err.Error() }
func (e *rerunError) Unwrap() error { return e.err }
func (e *rerunError) Rerun() bool   { return true }

// TestRerunAfterThaw: a statement refused for want of a privilege that is
// back by the time the refusal is explained (a storage-quota thaw in the
// meantime) runs once more and answers what it gives then; a statement
// refused for a privilege its caller really lacks runs twice, no more, and
// answers the permission error.
func TestRerunAfterThaw(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	if err := e.pg.Exec(ctx, e.owner,
		"CREATE TABLE thawing (v int)", "CREATE TABLE never_granted (v int)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.pg.Exec(context.Background(), e.owner, "DROP TABLE thawing", "DROP TABLE never_granted")
	})
	var explained atomic.Int32
	h := query.New(query.Config{ExplainError: func(ctx context.Context, tg *dbaccess.Target, err error) error {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			return err
		}
		if explained.Add(1) == 1 {
			// The thaw ends before the refusal is explained.
			if gerr := e.pg.Exec(ctx, e.owner, "GRANT INSERT ON thawing TO "+e.reader); gerr != nil {
				t.Error(gerr)
			}
		}
		return &rerunError{err}
	}}, e.res, nil)
	srv := httptest.NewServer(mux(h))
	defer srv.Close()

	status, out := post(t, srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/reader",
		"query_string": "INSERT INTO thawing VALUES (1)"})
	if status != http.StatusOK {
		t.Fatalf("INSERT refused before the thaw and explained after it: %d %s; want 200 (run again)", status, out)
	}
	if n := explained.Load(); n != 1 {
		t.Errorf("%d refusals explained; want 1", n)
	}
	if got := e.adminQuery(t, "SELECT count(*) FROM thawing"); got != 1 {
		t.Errorf("%d rows in the table; want 1 (the second run's)", got)
	}

	explained.Store(100) // no more grants
	er := failQuery(t, srv.URL, "/v2beta/query", map[string]any{"database_name": "acct/reader",
		"query_string": "INSERT INTO never_granted VALUES (1)"}, http.StatusBadRequest)
	if er.Code != "permission_denied" {
		t.Errorf("error = %+v; want permission_denied", er)
	}
	if n := explained.Load() - 100; n != 2 {
		t.Errorf("the refused statement ran %d times; want 2 (once more, once)", n)
	}
}
