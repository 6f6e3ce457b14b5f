package jobs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/blob"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// env is the shared test environment: a platform database provisioned
// by the store's own code path (pgtest) on its throwaway metadata
// database, where the job queue's migrations run as in bitd, a Service
// and an httptest server in front of it.
type env struct {
	adminURL string
	suffix   string
	metaDB   string
	targetDB string
	db       *pgtest.DB // the target database
	roles    map[dbaccess.Permission]string
	secret   []byte
	meta     *pgxpool.Pool // the metadata store's pool (pgtest closes it)
	admin    *pgxpool.Pool // superuser on the target database (for checks)
	pools    *testPools
	bucket   *blob.Bucket
	blobDir  string
	svc      *Service
	srv      *httptest.Server
	// fast records how each upload's fast path ended (job id → outcome).
	fast *sync.Map
	// crash maps a table to the point where its fast path stops as if bitd
	// died there (testSignals.crash).
	crash *sync.Map
}

var testEnv pgtest.Shared[*env]

func TestMain(m *testing.M) { pgtest.Main(m) }

func getEnv(t *testing.T) *env {
	t.Helper()
	return testEnv.Get(t, newEnv)
}

func newEnv(c *pgtest.Cluster, d *pgtest.DB, cleanup func(func())) (*env, error) {
	ctx := context.Background()
	var err error
	e := &env{adminURL: c.AdminURL, suffix: pgtest.RandHex(4), secret: c.Secret, fast: &sync.Map{}, crash: &sync.Map{},
		metaDB: c.Store.MetadataDB(), targetDB: d.Name, db: d, meta: c.Store.DB,
		roles: map[dbaccess.Permission]string{dbaccess.Owner: d.Owner, dbaccess.Writer: d.Writer, dbaccess.Reader: d.Reader}}
	e.admin, err = pgxpool.New(ctx, d.URL(""))
	if err != nil {
		return nil, err
	}
	cleanup(e.admin.Close)
	if err := Migrate(ctx, e.meta); err != nil {
		return nil, err
	}
	e.pools = &testPools{e: e, pools: map[string]*pgxpool.Pool{}}
	cleanup(e.pools.close)
	e.blobDir, err = os.MkdirTemp("", "bkjobs-blobs-")
	if err != nil {
		return nil, err
	}
	cleanup(func() { os.RemoveAll(e.blobDir) })
	e.bucket, err = blob.Open(ctx, "", e.blobDir)
	if err != nil {
		return nil, err
	}
	cleanup(func() { e.bucket.Close() })
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	cleanup(e.srv.Close)
	e.svc, err = New(ctx, Config{PublicURL: e.srv.URL, Secret: e.secret, Workers: 3, Queue: "test_" + e.suffix,
		RescueAfter: 30 * time.Second, MaxURLFetchBytes: 1 << 20, URLFetchTimeout: 10 * time.Second,
		SweepInterval: -1}, // the retention tests run the sweep themselves
		e.meta, e.pools, &testResolver{e: e}, e.bucket, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.svc.Stop(ctx)
	})
	e.register(mux, e.svc)
	// the tests run many uploads at once and check how each one was loaded
	e.svc.fastSlots = make(chan struct{}, 64)
	e.svc.fastRecover = time.Second
	e.svc.test.Store(&testSignals{
		onFastPath: func(id, outcome string, reason error) {
			if reason != nil {
				outcome += ": " + reason.Error()
			}
			e.fast.Store(id, outcome)
		},
		crash: func(table, point string) bool {
			p, _ := e.crash.Load(table)
			return p == point
		},
	})
	return e, nil
}

// fastOutcome says how the upload fast path of job id ended ("" when it
// was not tried): "loaded", "fallback" or "commit_failed"; fastReason adds
// why.
func (e *env) fastOutcome(id string) string {
	o, _, _ := strings.Cut(e.fastReason(id), ":")
	return o
}

func (e *env) fastReason(id string) string {
	v, _ := e.fast.Load(id)
	s, _ := v.(string)
	return s
}

func (e *env) register(mux *http.ServeMux, svc *Service) {
	for _, rt := range svc.Routes() {
		h := rt.Handler
		if !rt.Public {
			h = testAuth(h)
		}
		mux.Handle(rt.Pattern, h)
	}
}

// testPools logs in as the database roles with their derived passwords,
// where bitd would (pgtest.DB.URL).
type testPools struct {
	e     *env
	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
}

func (p *testPools) Pool(ctx context.Context, pgDatabase, pgRole string) (*pgxpool.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pool := p.pools[pgRole]; pool != nil {
		return pool, nil
	}
	if pgDatabase != p.e.db.Name {
		return nil, fmt.Errorf("testPools: no database %q (only %s)", pgDatabase, p.e.db.Name)
	}
	pool, err := pgxpool.New(ctx, p.e.db.URL(pgRole))
	if err != nil {
		return nil, err
	}
	p.pools[pgRole] = pool
	return pool, nil
}

func (p *testPools) close() {
	for _, pool := range p.pools {
		pool.Close()
	}
}

// testResolver knows one database, "acct/db"; the user ids "owner",
// "writer" and "reader" have those permissions on it.
type testResolver struct{ e *env }

func (r *testResolver) Resolve(ctx context.Context, fullName string) (*dbaccess.Target, error) {
	p := authn.From(ctx)
	if p == nil {
		return nil, apierr.Unauthorized("no principal")
	}
	if fullName != "acct/db" {
		return nil, apierr.NotFound("database %q not found", fullName)
	}
	perm := map[string]dbaccess.Permission{"owner": dbaccess.Owner, "writer": dbaccess.Writer, "reader": dbaccess.Reader}[p.UserID]
	if perm == "" {
		return nil, apierr.NotFound("database %q not found", fullName)
	}
	return &dbaccess.Target{DatabaseID: "db-1", FullName: "acct/db", PGDatabase: r.e.targetDB, Permission: perm,
		PGRole: r.e.roles[perm], Principal: p}, nil
}

// testAuth takes the user id from the X-Test-User header.
func testAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("X-Test-User"); u != "" {
			r = r.WithContext(authn.With(r.Context(), &authn.Principal{Kind: authn.KindUser, UserID: u, Name: u}))
		}
		h.ServeHTTP(w, r)
	})
}

// job is the decoded Job object.
type job struct {
	ID           string         `json:"id"`
	DateCreated  string         `json:"date_created"`
	DateFinished *string        `json:"date_finished"`
	State        string         `json:"state"`
	Retries      int            `json:"retries"`
	ErrorType    *string        `json:"error_type"`
	ErrorID      *string        `json:"error_id"`
	ErrorDetails map[string]any `json:"error_details"`
	StatusURL    string         `json:"status_url"`
	Progress     struct {
		BytesTotal int64 `json:"bytes_total"`
		BytesDone  int64 `json:"bytes_done"`
		Rows       int64 `json:"rows"`
	} `json:"progress"`
	ExportFormat string  `json:"export_format"`
	FileName     string  `json:"file_name"`
	DownloadURL  *string `json:"download_url"`
}

func (e *env) do(t *testing.T, user, method, path, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, b := bitdtest.Do(t, req)
	return resp.StatusCode, b
}

// startImport posts a multipart import; file may be nil (then fields must
// hold file_url).
func (e *env) startImport(t *testing.T, user string, fields map[string]string, fileName string, file []byte) (int, job, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	code, b := e.do(t, user, "POST", "/v2beta/db/acct/db/import/", mw.FormDataContentType(), &buf)
	var j job
	if code == http.StatusAccepted {
		if err := jsonx.Unmarshal(b, &j); err != nil {
			t.Fatalf("decode job: %v: %s", err, b)
		}
	}
	return code, j, b
}

// wait polls a job until it is DONE or FAILED.
func (e *env) wait(t *testing.T, user, kind, id string) job {
	t.Helper()
	var j job
	testwait.Eventually(t, 2*time.Minute, func() error {
		code, b := e.do(t, user, "GET", "/v2beta/"+kind+"/"+id, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s job: %d %s", kind, code, b)
		}
		j = job{}
		if err := jsonx.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		if j.State != StateDone && j.State != StateFailed {
			return fmt.Errorf("job %s still %s", id, j.State)
		}
		return nil
	})
	return j
}

// importOK imports and requires DONE.
func (e *env) importOK(t *testing.T, user string, fields map[string]string, fileName string, file []byte) job {
	t.Helper()
	code, j, b := e.startImport(t, user, fields, fileName, file)
	if code != http.StatusAccepted {
		t.Fatalf("import: %d %s", code, b)
	}
	j = e.wait(t, user, "import", j.ID)
	if j.State != StateDone {
		t.Fatalf("import %s: %s %v %v", j.ID, j.State, deref(j.ErrorType), j.ErrorDetails)
	}
	return j
}

// importFailed imports and requires FAILED with errType.
func (e *env) importFailed(t *testing.T, user string, fields map[string]string, fileName string, file []byte, errType string) job {
	t.Helper()
	code, j, b := e.startImport(t, user, fields, fileName, file)
	if code != http.StatusAccepted {
		t.Fatalf("import: %d %s", code, b)
	}
	j = e.wait(t, user, "import", j.ID)
	if j.State != StateFailed || deref(j.ErrorType) != errType {
		t.Fatalf("import %s: state %s error_type %q (want FAILED %s), details %v", j.ID, j.State, deref(j.ErrorType), errType, j.ErrorDetails)
	}
	if j.ErrorID == nil || *j.ErrorID == "" || j.DateFinished == nil {
		t.Fatalf("FAILED job lacks error_id or date_finished: %+v", j)
	}
	if msg, _ := j.ErrorDetails["message"].(string); msg == "" {
		t.Fatalf("FAILED job has no message in error_details: %v", j.ErrorDetails)
	}
	return j
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// columns returns column name → data type of a table (in order).
func (e *env) columns(t *testing.T, table string) [][2]string {
	t.Helper()
	rows, err := e.admin.Query(t.Context(), `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var a [2]string
		err := r.Scan(&a[0], &a[1])
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// text returns every row of a query as text values (NULL as "∅").
func (e *env) text(t *testing.T, sql string) [][]string {
	t.Helper()
	rows, err := e.admin.Query(t.Context(), sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		raw := rows.RawValues()
		r := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				r[i] = "∅"
			} else {
				r[i] = string(v)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) tableExists(t *testing.T, table string) bool {
	t.Helper()
	var ok bool
	if err := e.admin.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{"public", table}.Sanitize()).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func joinRows(rows [][]string) string {
	var sb strings.Builder
	for _, r := range rows {
		sb.WriteString(strings.Join(r, "|"))
		sb.WriteString("\n")
	}
	return sb.String()
}
