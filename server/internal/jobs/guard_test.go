package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// guard is a second Service over the shared test environment, with its own
// queue and configuration: callers carry a credential ("cred-<user>") and an
// account ("acct-<user>"), which the test can revoke or deny.
type guard struct {
	*env
	revoked *sync.Map // credential id → true
	denied  *sync.Map // user id → true
}

// testCreds is the CredentialChecker of a guard.
type testCreds struct{ revoked *sync.Map }

func (c testCreds) CredentialValid(_ context.Context, id string) bool {
	_, gone := c.revoked.Load(id)
	return !gone
}

// denyResolver is testResolver that answers 404 to denied users.
type denyResolver struct {
	testResolver
	denied *sync.Map
}

func (r *denyResolver) Resolve(ctx context.Context, fullName string) (*dbaccess.Target, error) {
	if p := authn.From(ctx); p != nil {
		if _, no := r.denied.Load(p.UserID); no {
			return nil, apierr.NotFound("database %q not found", fullName)
		}
	}
	return r.testResolver.Resolve(ctx, fullName)
}

// newGuard starts a Service with cfg (PublicURL, Secret, Queue and
// Credentials are filled in) and an HTTP server in front of it.
func newGuard(t *testing.T, cfg Config) *guard {
	t.Helper()
	base := getEnv(t)
	g := &guard{revoked: &sync.Map{}, denied: &sync.Map{}}
	e := *base // the shared databases, pools and bucket; its own server and Service
	g.env = &e
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	cfg.PublicURL, cfg.Secret, cfg.Queue = e.srv.URL, e.secret, "guard_"+pgtest.RandHex(4)
	cfg.Credentials, cfg.SweepInterval = testCreds{g.revoked}, -1
	if cfg.RescueAfter == 0 {
		cfg.RescueAfter = 30 * time.Second
	}
	svc, err := New(t.Context(), cfg, e.meta, e.pools, &denyResolver{testResolver{&e}, g.denied}, e.bucket,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	svc.test.Store(&testSignals{noFastPath: true})
	e.svc = svc
	for _, rt := range svc.Routes() {
		h := rt.Handler
		if !rt.Public {
			h = credAuth(h)
		}
		mux.Handle(rt.Pattern, h)
	}
	return g
}

// credAuth is testAuth with a credential and an account per user.
func credAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("X-Test-User"); u != "" {
			r = r.WithContext(authn.With(r.Context(), &authn.Principal{Kind: authn.KindUser, UserID: u, Name: u,
				CredentialID: "cred-" + u, AccountID: "acct-" + u}))
		}
		h.ServeHTTP(w, r)
	})
}

// startExport posts an export and returns the new job.
func (e *env) startExport(t *testing.T, user, body string) job {
	t.Helper()
	code, b := e.do(t, user, "POST", "/v2beta/db/acct/db/export/", "application/json", strings.NewReader(body))
	if code != http.StatusAccepted {
		t.Fatalf("export: %d %s", code, b)
	}
	var j job
	if err := jsonx.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// state reads a job's current state.
func (e *env) state(t *testing.T, user, kind, id string) job {
	t.Helper()
	code, b := e.do(t, user, "GET", "/v2beta/"+kind+"/"+id, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s job: %d %s", kind, code, b)
	}
	var j job
	if err := jsonx.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s: not within 2 minutes", what)
	}
}

// TestJobRecheckBeforeLoad: an import whose credential is revoked, or
// whose caller loses the database, while its file_url is being fetched
// FAILS (credential_revoked / permission_denied) and writes nothing.
func TestJobRecheckBeforeLoad(t *testing.T) {
	t.Parallel()
	g := newGuard(t, Config{AllowPrivateURLs: true, Workers: 2})
	for _, c := range []struct {
		name, user, errType string
		lose                func()
	}{
		{"revoked key", "writer", "credential_revoked", func() { g.revoked.Store("cred-writer", true) }},
		{"permission removed", "owner", "permission_denied", func() { g.denied.Store("owner", true) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, hit, release := bitdtest.BlockingFile(t, "data.csv", []byte("id,name\n1,a\n2,b\n"))
			table := "recheck_" + pgtest.RandHex(4)
			code, j, b := g.startImport(t, c.user, map[string]string{"table_name": table, "file_url": url}, "", nil)
			if code != http.StatusAccepted {
				t.Fatalf("import: %d %s", code, b)
			}
			waitClosed(t, hit, "the job fetching its file_url")
			c.lose()
			release()
			j = g.wait(t, c.user, "import", j.ID)
			if j.State != StateFailed || deref(j.ErrorType) != c.errType {
				t.Fatalf("import after %s: %s %q %v, want FAILED %s", c.name, j.State, deref(j.ErrorType), j.ErrorDetails, c.errType)
			}
			if msg, _ := j.ErrorDetails["message"].(string); !strings.Contains(msg, "did not run") {
				t.Fatalf("message does not say what happened: %q", msg)
			}
			if g.tableExists(t, table) {
				t.Fatalf("the refused import created table %s", table)
			}
		})
	}
}

// TestJobRecheckAtPickup: a queued export of a revoked credential FAILS
// with credential_revoked before its query runs.
func TestJobRecheckAtPickup(t *testing.T) {
	t.Parallel()
	g := newGuard(t, Config{Workers: 1})
	g.revoked.Store("cred-reader", true) // revoked after the job was queued (the handler does not ask)
	j := g.startExport(t, "reader", `{"query_string": "select 1"}`)
	j = g.wait(t, "reader", "export", j.ID)
	if j.State != StateFailed || deref(j.ErrorType) != "credential_revoked" {
		t.Fatalf("export of a revoked key: %s %q %v", j.State, deref(j.ErrorType), j.ErrorDetails)
	}
}

// TestExportCannotWrite: an export never changes data, whatever its query.
func TestExportCannotWrite(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	table := "ro_" + pgtest.RandHex(4)
	owner, err := e.pools.Pool(t.Context(), e.targetDB, e.roles[dbaccess.Owner])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(t.Context(), fmt.Sprintf("CREATE TABLE %s (id int); INSERT INTO %s VALUES (1), (2), (3)", table, table)); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, format, query, want string }{
		{"COPY pasting", "csv", "select 1) to stdout; commit; insert into " + table + " values (99); copy (select 2", "syntax error"},
		{"two statements", "csv", "select 1; delete from " + table, "exactly one query"},
		{"two statements json", "json", "select 1; delete from " + table, "exactly one query"},
		{"data-modifying CTE", "csv", "with d as (delete from " + table + " returning *) select * from d", "read-only"},
		{"data-modifying CTE json", "json", "with d as (delete from " + table + " returning *) select * from d", "read-only"},
		{"insert returning", "csv", "insert into " + table + " values (7) returning *", "read-only"},
		{"no rows", "csv", "truncate " + table, "must return rows"},
		{"commit", "parquet", "commit", "must return rows"},
		{"trailing comment", "csv", "delete from " + table + " --", "must return rows"},
	}
	t.Run("attempts", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				body := fmt.Sprintf(`{"query_string": %q, "export_format": %q}`, c.query, c.format)
				j := e.export(t, "writer", body) // the writer may delete: only the read-only export stops it
				msg, _ := j.ErrorDetails["message"].(string)
				if j.State != StateFailed || !strings.Contains(msg, c.want) {
					t.Fatalf("export %q: %s %q %q, want FAILED with %q", c.query, j.State, deref(j.ErrorType), msg, c.want)
				}
			})
		}
	})
	if got := e.text(t, "select string_agg(id::text, ',' order by id) from "+table); joinRows(got) != "1,2,3\n" {
		t.Errorf("the table changed: %v", got)
	}
	// a well-behaved export still works, with a trailing line comment
	j := e.export(t, "writer", fmt.Sprintf(`{"query_string": %q}`, "select id from "+table+" order by id -- the ids"))
	if j.State != StateDone || j.Progress.Rows != 3 {
		t.Fatalf("export: %+v", j)
	}
}

// TestJobStatementTimeoutAndFairness: with one running job per account,
// a second account's export finishes while the first account's two long
// exports take turns, and each of those FAILS with statement_timeout.
func TestJobStatementTimeoutAndFairness(t *testing.T) {
	t.Parallel()
	g := newGuard(t, Config{Workers: 3, MaxRunningPerAccount: 1, StatementTimeout: 3 * time.Second})
	a1 := g.startExport(t, "owner", `{"query_string": "select pg_sleep(60)"}`)
	a2 := g.startExport(t, "owner", `{"query_string": "select pg_sleep(60)"}`)
	b := g.startExport(t, "reader", `{"query_string": "select 1"}`)
	var bDone bool
	var s1, s2, sb job
	// Every sample checks the cap, until all three have ended.
	testwait.Eventually(t, 2*time.Minute, func() error {
		s1, s2, sb = g.state(t, "owner", "export", a1.ID), g.state(t, "owner", "export", a2.ID), g.state(t, "reader", "export", b.ID)
		if s1.State == StateProcessing && s2.State == StateProcessing {
			t.Fatal("both exports of one account run at once; the cap is 1")
		}
		if sb.State == StateDone && !bDone {
			bDone = true
			if s1.State == StateDone || s2.State == StateDone {
				t.Fatalf("a 60 s export finished: %s %s", s1.State, s2.State)
			}
		}
		if sb.State == StateFailed {
			t.Fatalf("the other account's export failed: %v", sb.ErrorDetails)
		}
		if bDone && s1.State == StateFailed && s2.State == StateFailed {
			return nil
		}
		return fmt.Errorf("not finished: %s %s %s", s1.State, s2.State, sb.State)
	})
	for _, j := range []job{s1, s2} {
		msg, _ := j.ErrorDetails["message"].(string)
		if deref(j.ErrorType) != "statement_timeout" || !strings.Contains(msg, "--job-statement-timeout") {
			t.Fatalf("long export: %q %q", deref(j.ErrorType), msg)
		}
		if j.Retries != 0 {
			t.Fatalf("a timed-out export was retried: %+v", j)
		}
	}
	tb, t1, t2 := finished(t, sb), finished(t, s1), finished(t, s2)
	if !tb.Before(t1) && !tb.Before(t2) {
		t.Fatalf("the other account's export finished last: %s vs %s, %s", *sb.DateFinished, *s1.DateFinished, *s2.DateFinished)
	}
}

// TestJobSlots: the running-job slots of an account are shared by every
// bitd on the metadata database, and freed when a holder's session ends.
func TestJobSlots(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	ctx := t.Context()
	key := "account:" + uuid.NewString()
	other, err := pgxpool.New(ctx, pgtest.WithDatabase(e.adminURL, e.metaDB)) // a second replica
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s1, err := takeSlot(ctx, e.svc.slots, key, 2)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := takeSlot(ctx, other, key, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s1.key == s2.key {
		t.Fatal("two jobs hold the same slot")
	}
	if _, err := takeSlot(ctx, e.svc.slots, key, 2); !errors.Is(err, errNoSlot) {
		t.Fatalf("third slot of 2: %v, want errNoSlot", err)
	}
	if _, err := takeSlot(ctx, other, key, 2); !errors.Is(err, errNoSlot) {
		t.Fatalf("third slot of 2 from another replica: %v, want errNoSlot", err)
	}
	s3, err := takeSlot(ctx, other, "account:"+uuid.NewString(), 2)
	if err != nil {
		t.Fatalf("another account: %v", err)
	}
	s3.release(ctx)
	s1.release(ctx)
	s4, err := takeSlot(ctx, e.svc.slots, key, 2)
	if err != nil {
		t.Fatalf("slot after a release: %v", err)
	}
	t.Cleanup(func() { s4.release(context.Background()) })
	// A replica that dies frees its slots with its session: PostgreSQL
	// ends the backend (and its advisory locks) once it sees the closed
	// socket, shortly after the close.
	_ = s2.conn.Hijack().Close(ctx)
	var s5 *slot
	_ = testwait.Wait(ctx, 30*time.Second, func() error {
		s5, err = takeSlot(ctx, e.svc.slots, key, 2)
		if errors.Is(err, errNoSlot) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("slot after its holder's session ended: %v", err)
	}
	s5.release(ctx)
}

func finished(t *testing.T, j job) time.Time {
	t.Helper()
	f, err := time.Parse(time.RFC3339Nano, *j.DateFinished)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestJobTimeoutError: both ends of the job statement timeout (PostgreSQL's
// statement_timeout and bitd's own deadline) become the statement_timeout
// user error; other cancellations stay retryable errors.
func TestJobTimeoutError(t *testing.T) {
	t.Parallel()
	s := &Service{cfg: Config{StatementTimeout: 90 * time.Second}}
	expired, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(-time.Second), errJobTimeout)
	defer cancel()
	stopped, stop := context.WithCancel(context.Background())
	stop()
	for _, c := range []struct {
		name    string
		ctx     context.Context
		err     error
		timeout bool
	}{
		{"PostgreSQL's timeout", context.Background(), &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, true},
		{"bitd's deadline", expired, context.DeadlineExceeded, true},
		{"a cancel request", context.Background(), &pgconn.PgError{Code: "57014", Message: "canceling statement due to user request"}, false},
		{"bitd stopping", stopped, context.Canceled, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.timeoutError(c.ctx, "the export's query", c.err)
			ue := asUserError(err)
			if !c.timeout {
				if err != c.err || ue != nil {
					t.Fatalf("%v became %v", c.err, err)
				}
				return
			}
			if ue == nil || ue.Type != "statement_timeout" || !strings.Contains(ue.Message, "1m30s") ||
				!strings.Contains(ue.Message, "--job-statement-timeout") {
				t.Fatalf("%v became %#v", c.err, ue)
			}
		})
	}
}
