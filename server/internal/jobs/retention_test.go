package jobs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/blob"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// age moves a job's date_finished back by d from now (the metadata
// database's clock, which the sweep uses).
func age(t *testing.T, meta *pgxpool.Pool, id string, d time.Duration) {
	t.Helper()
	tag, err := meta.Exec(t.Context(), `UPDATE bitkit_jobs SET date_finished = now() - $2::bigint * interval '1 microsecond'
		WHERE id = $1::uuid`, id, d.Microseconds())
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("age %s: %v (%d rows)", id, err, tag.RowsAffected())
	}
}

func blobExists(t *testing.T, b *blob.Bucket, key string) bool {
	t.Helper()
	ok, err := b.Exists(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func fileDeletedAt(t *testing.T, meta *pgxpool.Pool, id string) *time.Time {
	t.Helper()
	var at *time.Time
	if err := meta.QueryRow(t.Context(), "SELECT file_deleted_at FROM bitkit_jobs WHERE id = $1::uuid", id).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// errorCode decodes the code of a JSON error answer.
func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var v struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}
	if err := jsonx.Unmarshal(b, &v); err != nil {
		t.Fatalf("error answer is not JSON: %v: %s", err, b)
	}
	return v.Code
}

// TestExportRetention: an export older than the retention loses its file
// and says so (GET: download_url null, file_expired; download: 410
// export_expired), a younger one keeps it, a FAILED import's upload goes
// too, a blob that is already missing is fine, and sweeping again changes
// nothing. Not parallel: the counts of the sweep are exact only while no
// other test sweeps (the shared Service's own sweep is off).
func TestExportRetention(t *testing.T) {
	e := getEnv(t)
	exportTable(t, e)
	ret := e.svc.cfg.ExportRetention
	if ret != 168*time.Hour {
		t.Fatalf("default retention %v, want 168h", ret)
	}
	old := e.export(t, "reader", `{"table_name": "exp_src"}`)
	young := e.export(t, "reader", `{"table_name": "exp_src"}`)
	gone := e.export(t, "reader", `{"table_name": "exp_src"}`) // its blob disappears by hand
	for _, j := range []job{old, young, gone} {
		if j.State != StateDone || j.DownloadURL == nil {
			t.Fatalf("export %+v", j)
		}
		if !blobExists(t, e.bucket, exportKey(j.ID)) {
			t.Fatalf("export %s has no blob", j.ID)
		}
	}
	// a FAILED import keeps its upload today: the sweep is what removes it
	failed := e.importFailed(t, "owner", map[string]string{"table_name": "ret_ragged"}, "r.csv", []byte("a,b\n1,2\n3\n"), "ragged_row")
	if !blobExists(t, e.bucket, uploadKey(failed.ID)) {
		t.Fatalf("FAILED import %s has no upload left; the sweep test of uploads is moot", failed.ID)
	}
	okImport := e.importOK(t, "owner", map[string]string{"table_name": "ret_ok"}, "ok.csv", []byte("a,b\n1,2\n"))
	if blobExists(t, e.bucket, uploadKey(okImport.ID)) {
		t.Fatalf("DONE import %s kept its upload", okImport.ID)
	}

	age(t, e.meta, old.ID, ret+time.Hour)
	age(t, e.meta, gone.ID, ret+time.Hour)
	age(t, e.meta, failed.ID, ret+time.Hour)
	age(t, e.meta, okImport.ID, ret+time.Hour)
	age(t, e.meta, young.ID, ret-time.Hour)

	// missing blob of an aged export, before any sweep recorded it (a sweep
	// deleting it right now): still export_expired, never 404 or 500
	if err := e.bucket.Delete(t.Context(), exportKey(gone.ID)); err != nil {
		t.Fatal(err)
	}
	resp, b := download(t, *gone.DownloadURL)
	if resp.StatusCode != http.StatusGone || errorCode(t, b) != "export_expired" {
		t.Fatalf("download of an aged export without its blob: %d %s", resp.StatusCode, b)
	}

	res, err := e.svc.sweep(t.Context(), sweepBatch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exports != 2 || res.Uploads != 1 {
		t.Fatalf("sweep deleted %+v, want 2 exports (one already missing) and 1 upload", res)
	}
	if blobExists(t, e.bucket, exportKey(old.ID)) || blobExists(t, e.bucket, uploadKey(failed.ID)) {
		t.Fatal("an expired blob is still there")
	}
	if !blobExists(t, e.bucket, exportKey(young.ID)) {
		t.Fatal("the younger export lost its file")
	}
	for _, id := range []string{old.ID, gone.ID, failed.ID} {
		if fileDeletedAt(t, e.meta, id) == nil {
			t.Errorf("job %s: file_deleted_at not recorded", id)
		}
	}
	for _, id := range []string{young.ID, okImport.ID} {
		if fileDeletedAt(t, e.meta, id) != nil {
			t.Errorf("job %s: file_deleted_at recorded, but nothing was swept", id)
		}
	}

	// GET of the expired export: still the DONE job, no download_url, a
	// file_expired note with the date
	j := e.wait(t, "reader", "export", old.ID)
	deleted := fileDeletedAt(t, e.meta, old.ID)
	if j.State != StateDone || j.DownloadURL != nil || j.ErrorType != nil {
		t.Fatalf("expired export job = %+v", j)
	}
	code, raw := e.do(t, "reader", "GET", "/v2beta/export/"+old.ID, "", nil)
	var fe struct {
		FileExpired *struct {
			Date    string `json:"date"`
			Message string `json:"message"`
		} `json:"file_expired"`
	}
	if err := jsonx.Unmarshal(raw, &fe); err != nil || code != http.StatusOK {
		t.Fatalf("GET: %d %v %s", code, err, raw)
	}
	if fe.FileExpired == nil {
		t.Fatalf("no file_expired: %s", raw)
	}
	if got, err := time.Parse(time.RFC3339Nano, fe.FileExpired.Date); err != nil || !got.Equal(*deleted) {
		t.Errorf("file_expired.date %q, want %v", fe.FileExpired.Date, deleted)
	}
	if !strings.Contains(fe.FileExpired.Message, deleted.UTC().Format(time.RFC3339)) ||
		!strings.Contains(fe.FileExpired.Message, "run the export again") {
		t.Errorf("file_expired.message %q", fe.FileExpired.Message)
	}
	// the younger export: download_url, no file_expired, downloadable
	code, raw = e.do(t, "reader", "GET", "/v2beta/export/"+young.ID, "", nil)
	if code != http.StatusOK || !bytes.Contains(raw, []byte(`"file_expired":null`)) {
		t.Fatalf("young export GET: %d %s", code, raw)
	}
	yj := e.wait(t, "reader", "export", young.ID)
	if yj.DownloadURL == nil {
		t.Fatalf("young export has no download_url: %+v", yj)
	}
	if resp, _ := download(t, *yj.DownloadURL); resp.StatusCode != http.StatusOK {
		t.Fatalf("young export download: %d", resp.StatusCode)
	}

	// the download URL minted before the sweep: 410 export_expired, which
	// is not download_expired (the URL itself is still valid)
	resp, b = download(t, *old.DownloadURL)
	if resp.StatusCode != http.StatusGone || errorCode(t, b) != "export_expired" || !bytes.Contains(b, []byte("run the export again")) {
		t.Fatalf("download of an expired export: %d %s", resp.StatusCode, b)
	}
	// an expired URL of an expired export is still download_expired
	tok, err := signToken(e.svc.key, old.ID, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	resp, b = download(t, e.srv.URL+"/v2beta/files/"+tok)
	if resp.StatusCode != http.StatusGone || errorCode(t, b) != "download_expired" {
		t.Fatalf("expired URL: %d %s", resp.StatusCode, b)
	}

	// sweeping again deletes nothing and keeps the recorded date
	res, err = e.svc.sweep(t.Context(), sweepBatch)
	if err != nil || res != (sweepResult{}) {
		t.Fatalf("second sweep: %+v %v", res, err)
	}
	if again := fileDeletedAt(t, e.meta, old.ID); again == nil || !again.Equal(*deleted) {
		t.Errorf("file_deleted_at changed from %v to %v", deleted, again)
	}
}

// insertFinished stores a finished job row (old-schema columns only) and,
// when blobKey is set, its blob, aged by age.
func insertFinished(t *testing.T, meta *pgxpool.Pool, b *blob.Bucket, kind, state, blobKey string, age time.Duration) string {
	t.Helper()
	id := uuid.NewString()
	var key *string
	if blobKey != "" {
		k := blobKey + id
		key = &k
		if err := b.WriteAll(t.Context(), k, []byte("x,y\n1,2\n"), nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := meta.Exec(t.Context(), `INSERT INTO bitkit_jobs (id, kind, owner_id, database_id, database_name, pg_database, pg_role,
		state, blob_key, date_finished) VALUES ($1::uuid, $2, 'user:owner', 'db-1', 'acct/db', 'x', 'x', $3, $4,
		now() - $5::bigint * interval '1 microsecond')`, id, kind, state, key, age.Microseconds())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRetentionConcurrentSweeps runs four sweeps at once, in small batches,
// over 20 expired exports: none fails, every file is deleted and every row
// is recorded once (the sweeps' counts add up to 20). Not parallel, like
// TestExportRetention.
func TestRetentionConcurrentSweeps(t *testing.T) {
	e := getEnv(t)
	ret := e.svc.cfg.ExportRetention
	var ids []string
	for range 20 {
		ids = append(ids, insertFinished(t, e.meta, e.bucket, "export", StateDone, "exports/", ret+time.Minute))
	}
	var wg sync.WaitGroup
	results := make([]sweepResult, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() { results[i], errs[i] = e.svc.sweep(t.Context(), 3) })
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Errorf("sweep %d: %v", i, errs[i])
		}
		if results[i].Uploads != 0 {
			t.Errorf("sweep %d deleted uploads: %+v", i, results[i])
		}
		total += results[i].Exports
	}
	if total != len(ids) {
		t.Errorf("the sweeps deleted %d exports in all (%+v), want %d", total, results, len(ids))
	}
	var rows []string
	if err := e.meta.QueryRow(t.Context(), `SELECT coalesce(array_agg(blob_key), '{}') FROM bitkit_jobs
		WHERE id = ANY($1::uuid[]) AND file_deleted_at IS NULL`, ids).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Errorf("rows not recorded: %v", rows)
	}
	for _, id := range ids {
		var key string
		if err := e.meta.QueryRow(t.Context(), "SELECT blob_key FROM bitkit_jobs WHERE id = $1::uuid", id).Scan(&key); err != nil {
			t.Fatal(err)
		}
		if blobExists(t, e.bucket, key) {
			t.Errorf("blob %s still there", key)
		}
	}
}

// TestRetentionMigrationAndLoop builds the schema of a bitd from before
// export retention (migration 1 only) with a finished export in it, then
// Migrate upgrades it in place (column, index, version 2; again is a
// no-op); a sweep logs only when it deleted something; and the periodic
// sweep of a Service deletes an expired file by itself.
func TestRetentionMigrationAndLoop(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	ctx := t.Context()
	dbName := "bkjobs_ret_" + pgtest.RandHex(4)
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
	}()
	meta, err := pgxpool.New(ctx, pgtest.WithDatabase(e.adminURL, dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	bucket, err := blob.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()

	if err := migrateTo(ctx, meta, 1); err != nil {
		t.Fatal(err)
	}
	var hasCol bool
	const colQ = `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'bitkit_jobs' AND column_name = 'file_deleted_at')`
	if err := meta.QueryRow(ctx, colQ).Scan(&hasCol); err != nil || hasCol {
		t.Fatalf("version 1 schema already has file_deleted_at (%v)", err)
	}
	oldID := insertFinished(t, meta, bucket, "export", StateDone, "exports/", 30*24*time.Hour)
	failedID := insertFinished(t, meta, bucket, "import", StateFailed, "uploads/", 30*24*time.Hour)
	doneImportID := insertFinished(t, meta, bucket, "import", StateDone, "uploads/", 30*24*time.Hour)

	for range 2 { // the second run finds nothing to do
		if err := Migrate(ctx, meta); err != nil {
			t.Fatal(err)
		}
	}
	var version int
	var idx string
	if err := meta.QueryRow(ctx, "SELECT max(version) FROM bitkit_jobs_migrations").Scan(&version); err != nil || version != len(migrations)-1 {
		t.Fatalf("migration version %d (%v), want %d", version, err, len(migrations)-1)
	}
	if err := meta.QueryRow(ctx, colQ).Scan(&hasCol); err != nil || !hasCol {
		t.Fatalf("file_deleted_at missing after Migrate (%v)", err)
	}
	if err := meta.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE indexname = 'bitkit_jobs_retention_idx'").Scan(&idx); err != nil ||
		!strings.Contains(idx, "(date_finished)") || !strings.Contains(idx, "file_deleted_at IS NULL") {
		t.Fatalf("retention index: %q %v", idx, err)
	}
	// the sweep's query can use the partial index
	if plan := explainSweep(t, meta); !strings.Contains(plan, "bitkit_jobs_retention_idx") {
		t.Fatalf("the sweep's query does not use the retention index:\n%s", plan)
	}
	if fileDeletedAt(t, meta, oldID) != nil {
		t.Fatal("upgraded row has file_deleted_at")
	}

	// a Service without river (the sweep needs only these)
	logs := &bitdtest.LogBuffer{}
	bare := &Service{cfg: Config{ExportRetention: 100 * 24 * time.Hour}, meta: meta, bucket: bucket, now: time.Now,
		log: slog.New(slog.NewTextHandler(logs, nil))}
	if res, err := bare.sweep(ctx, sweepBatch); err != nil || res != (sweepResult{}) {
		t.Fatalf("sweep with a 100-day retention: %+v %v", res, err)
	}
	if logs.String() != "" {
		t.Fatalf("a sweep that deleted nothing logged: %s", logs)
	}
	bare.cfg.ExportRetention = DefaultExportRetention
	if res, err := bare.sweep(ctx, sweepBatch); err != nil || res != (sweepResult{Exports: 1, Uploads: 1}) {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if l := logs.String(); strings.Count(l, "\n") != 1 || !strings.Contains(l, "level=INFO") || !strings.Contains(l, "exports=1 uploads=1") {
		t.Fatalf("sweep log: %q", l)
	}
	if fileDeletedAt(t, meta, oldID) == nil || fileDeletedAt(t, meta, failedID) == nil || fileDeletedAt(t, meta, doneImportID) != nil {
		t.Fatal("wrong rows recorded")
	}
	if blobExists(t, bucket, exportKey(oldID)) || blobExists(t, bucket, uploadKey(failedID)) {
		t.Fatal("expired blobs left")
	}

	// the periodic sweep of a running Service
	loopID := insertFinished(t, meta, bucket, "export", StateDone, "exports/", 8*24*time.Hour)
	svc, err := New(ctx, Config{PublicURL: "http://127.0.0.1:1", Secret: e.secret, Queue: "ret_" + pgtest.RandHex(4),
		SweepInterval: 10 * time.Millisecond}, meta, nil, nil, bucket, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 2*time.Minute, func() error {
		if fileDeletedAt(t, meta, loopID) == nil {
			return errors.New("the periodic sweep did not delete the expired export")
		}
		return nil
	})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if blobExists(t, bucket, exportKey(loopID)) {
		t.Fatal("the periodic sweep recorded the export but left its blob")
	}
}

// explainSweep is the plan of the sweep's query with sequential scans
// discouraged (the test tables are too small for the planner to prefer an
// index otherwise): it shows whether the index can answer it.
func explainSweep(t *testing.T, meta *pgxpool.Pool) string {
	t.Helper()
	tx, err := meta.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(t.Context(), "SET LOCAL enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(t.Context(), `EXPLAIN (COSTS OFF) SELECT id::text, kind, blob_key FROM bitkit_jobs WHERE `+sweepPredicate+`
		AND date_finished < now() - $1::bigint * interval '1 microsecond' ORDER BY date_finished LIMIT $2 FOR UPDATE SKIP LOCKED`,
		DefaultExportRetention.Microseconds(), sweepBatch)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
