package query_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/bitkit-dev/bitkit/server/internal/query"
	"github.com/jackc/pgx/v5"
)

// env is one throwaway platform database, provisioned by the store's own
// code path (pgtest), and a Handler over it.
type env struct {
	pg       *pgtest.DB
	db       string
	owner    string
	writer   string
	reader   string
	mgr      *pgpool.Manager
	single   *pgpool.Manager    // MaxConnsPerPool 1: session hygiene tests
	signals  pgpool.TestSignals // of single
	usage    *usageCounter
	handler  *query.Handler
	srv      *httptest.Server
	limited  *httptest.Server // MaxRows 1000, MaxBytes 64 KiB
	stalling *httptest.Server // StreamStallTimeout 1s
	res      *resolver
}

var shared pgtest.Shared[*env]

type usageCounter struct {
	mu   sync.Mutex
	rows map[string]int64
}

func (u *usageCounter) AddRowsQueried(_ context.Context, id string, rows int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rows[id] += rows
}

func (u *usageCounter) get(id string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.rows[id]
}

type resolver struct{ targets map[string]*dbaccess.Target }

func (r *resolver) Resolve(_ context.Context, name string) (*dbaccess.Target, error) {
	t, ok := r.targets[name]
	if !ok {
		return nil, apierr.NotFound("database %q not found", name)
	}
	return t, nil
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup returns the shared test environment, creating it on first use.
func setup(t testing.TB) *env {
	t.Helper()
	return shared.Get(t, newEnv)
}

func newEnv(c *pgtest.Cluster, d *pgtest.DB, cleanup func(func())) (*env, error) {
	ctx := context.Background()
	e := &env{pg: d, db: d.Name, owner: d.Owner, writer: d.Writer, reader: d.Reader,
		usage: &usageCounter{rows: map[string]int64{}}}
	if err := d.Exec(ctx, d.Owner,
		"CREATE TYPE mood AS ENUM ('happy', 'sad')",
		"CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)",
		"INSERT INTO items VALUES (1, 'one'), (2, 'two')",
	); err != nil {
		return nil, err
	}
	e.mgr = pgpool.New(pgpool.Config{ConnString: c.AdminURL, Secret: c.Secret})
	cleanup(e.mgr.Close)
	e.single = pgpool.New(pgpool.Config{ConnString: c.AdminURL, Secret: c.Secret, MaxConnsPerPool: 1, TestSignals: &e.signals})
	cleanup(e.single.Close)
	targets := map[string]*dbaccess.Target{}
	add := func(name string, m *pgpool.Manager, role string, perm dbaccess.Permission) error {
		p, err := m.Pool(ctx, e.db, role)
		if err != nil {
			return err
		}
		targets[name] = &dbaccess.Target{DatabaseID: "id-" + e.db, FullName: name, PGDatabase: e.db, Permission: perm, PGRole: role, Pool: p}
		return nil
	}
	for _, a := range []struct {
		name string
		m    *pgpool.Manager
		role string
		perm dbaccess.Permission
	}{
		{"acct/owner", e.mgr, e.owner, dbaccess.Owner},
		{"acct/writer", e.mgr, e.writer, dbaccess.Writer},
		{"acct/reader", e.mgr, e.reader, dbaccess.Reader},
		{"acct/single", e.single, e.owner, dbaccess.Owner},
	} {
		if err := add(a.name, a.m, a.role, a.perm); err != nil {
			return nil, err
		}
	}
	res := &resolver{targets: targets}
	e.res = res
	e.handler = query.New(query.Config{}, res, e.usage)
	e.srv = httptest.NewServer(mux(e.handler))
	cleanup(e.srv.Close)
	e.limited = httptest.NewServer(mux(query.New(query.Config{MaxRows: 1000, MaxBytes: 64 << 10}, res, nil)))
	cleanup(e.limited.Close)
	e.stalling = httptest.NewServer(mux(query.New(query.Config{StreamStallTimeout: time.Second}, res, nil)))
	cleanup(e.stalling.Close)
	return e, nil
}

func mux(h *query.Handler) http.Handler {
	m := http.NewServeMux()
	m.Handle("POST /v2beta/query", apierr.HandlerFunc(h.ServeQuery))
	m.Handle("POST /v2beta/query/batch", apierr.HandlerFunc(h.ServeBatch))
	return m
}

// admin runs a query as the cluster admin in the test database.
func (e *env) adminQuery(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	c, err := pgx.Connect(t.Context(), e.pg.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// result is a buffered query answer.
type result struct {
	QueryString string            `json:"query_string"`
	Metadata    map[string]string `json:"metadata"`
	Columns     []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		TypeOID uint32 `json:"type_oid"`
	} `json:"columns"`
	Data     []jsonx.RawMessage `json:"data"`
	RowCount int64              `json:"row_count"`
	Command  string             `json:"command"`
}

type apiError struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	SQLState string `json:"sqlstate"`
	Index    *int   `json:"index"`
	Field    string `json:"field"`
}

// post sends body to path and returns the status and the raw answer.
func post(t *testing.T, base, path string, body any, header ...string) (int, []byte) {
	t.Helper()
	b, err := jsonx.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, out := bitdtest.Do(t, req)
	return resp.StatusCode, out
}

// mustQuery runs a buffered query that must succeed.
func (e *env) mustQuery(t *testing.T, db, sql string, params ...any) *result {
	t.Helper()
	body := map[string]any{"database_name": db, "query_string": sql}
	if params != nil {
		body["params"] = params
	}
	status, out := post(t, e.srv.URL, "/v2beta/query", body)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", sql, status, out)
	}
	var r result
	if err := jsonx.Unmarshal(out, &r); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return &r
}

// failQuery runs a request that must fail with status and returns the error.
func failQuery(t *testing.T, base, path string, body map[string]any, status int) *apiError {
	t.Helper()
	got, out := post(t, base, path, body)
	if got != status {
		t.Fatalf("status %d, want %d: %s", got, status, out)
	}
	var e apiError
	if err := jsonx.Unmarshal(out, &e); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return &e
}

// cell returns row r, column c of a rows-mode answer as raw JSON.
func cell(t *testing.T, r *result, row, col int) string {
	t.Helper()
	var cells []jsonx.RawMessage
	if err := jsonx.Unmarshal(r.Data[row], &cells); err != nil {
		t.Fatal(err)
	}
	return string(cells[col])
}

// waitNoActive polls pg_stat_activity until no backend of the test database
// runs a query containing marker, or fails after a generous deadline.
func (e *env) waitNoActive(t *testing.T, marker string) {
	t.Helper()
	testwait.Eventually(t, 20*time.Second, func() error {
		n := e.adminQuery(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%' || $2 || '%' AND pid <> pg_backend_pid()`, e.db, marker)
		if n != 0 {
			return fmt.Errorf("%d backend(s) still run the query marked %q", n, marker)
		}
		return nil
	})
}
