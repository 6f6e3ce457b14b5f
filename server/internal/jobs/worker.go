package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/export"
	"github.com/bitkit-dev/bitkit/server/internal/ingest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	gblob "gocloud.dev/blob"
)

type jobArgs interface{ Kind() string }

// importArgs is the river job of an import.
type importArgs struct {
	JobID string `json:"job_id"`
	// Traceparent is the W3C trace context of the request that created
	// the job, when it was traced: the run's span links to it.
	Traceparent string `json:"traceparent,omitempty"`
}

// Kind is the river job kind.
func (importArgs) Kind() string { return "bitkit_import" }

// exportArgs is the river job of an export.
type exportArgs struct {
	JobID       string `json:"job_id"`
	Traceparent string `json:"traceparent,omitempty"`
}

// Kind is the river job kind.
func (exportArgs) Kind() string { return "bitkit_export" }

type importWorker struct {
	river.WorkerDefaults[importArgs]
	s *Service
}

func (w *importWorker) Work(ctx context.Context, job *river.Job[importArgs]) error {
	ctx, done := w.s.traceRun(ctx, "job.import", job.Args.JobID, job.Args.Traceparent, job.Attempt)
	err := w.s.work(ctx, job.Args.JobID, job.Attempt, job.MaxAttempts, w.s.runImport)
	done(err)
	return err
}

type exportWorker struct {
	river.WorkerDefaults[exportArgs]
	s *Service
}

func (w *exportWorker) Work(ctx context.Context, job *river.Job[exportArgs]) error {
	ctx, done := w.s.traceRun(ctx, "job.export", job.Args.JobID, job.Args.Traceparent, job.Attempt)
	err := w.s.work(ctx, job.Args.JobID, job.Attempt, job.MaxAttempts, w.s.runExport)
	done(err)
	return err
}

// userError is an error in the user's input or SQL: the job FAILS at once.
type userError struct {
	Type    string
	Message string
	Details map[string]any
}

func (e *userError) Error() string { return e.Message }

// detach returns a context that ends when ctx is cancelled but not when its
// deadline (river's JobTimeout, which is only the rescue horizon) passes.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return out, func() { stop(); cancel() }
}

func (s *Service) work(jobCtx context.Context, id string, attempt, maxAttempts int, run func(context.Context, *record) error) error {
	ctx, cancel := detach(jobCtx)
	defer cancel()
	rec, err := s.getJob(ctx, id)
	if errors.Is(err, errNoJob) {
		s.log.WarnContext(ctx, "river job without its bitkit_jobs row", "job", id)
		return nil
	}
	if err != nil {
		return err
	}
	if rec.State == StateDone || rec.State == StateFailed {
		return nil
	}
	s.log.DebugContext(ctx, "job picked up", "job", id, "kind", rec.Kind, "attempt", attempt, "queued", time.Since(rec.DateCreated))
	if err = s.admit(ctx, rec); err == nil {
		err = s.runInSlot(ctx, rec, run)
	}
	if errors.Is(err, errNoSlot) {
		s.log.DebugContext(ctx, "job waits: its account runs as many jobs as it may", "job", id,
			"max_running_per_account", s.cfg.MaxRunningPerAccount)
		return river.JobSnooze(snoozeForSlot())
	}
	if err == nil {
		return nil
	}
	var snooze *river.JobSnoozeError
	if errors.As(err, &snooze) {
		return err
	}
	if sz := snoozeOverBudget(err); sz != nil {
		s.log.InfoContext(ctx, "job postponed: its account has no database connection left", "job", id, "err", err)
		return sz
	}
	if ctx.Err() != nil && s.stopping.Load() {
		// Shutting down (bitd drains): whatever the cancellation made of
		// the error (a cut file_url fetch looks like url_fetch_failed), the
		// job is handed back and runs again from the start, on another
		// bitd or after a restart.
		return river.JobSnooze(0)
	}
	if ue := asUserError(err); ue != nil {
		details := map[string]any{}
		for k, v := range ue.Details {
			details[k] = v
		}
		details["message"] = ue.Message
		errID := uuid.NewString()
		s.log.InfoContext(ctx, "job failed", "job", id, "error_type", ue.Type, "error_id", errID)
		if ferr := s.finishFailed(context.WithoutCancel(ctx), id, ue.Type, errID, details); ferr != nil {
			return ferr
		}
		return nil
	}
	if attempt >= maxAttempts {
		errID := uuid.NewString()
		s.log.ErrorContext(ctx, "job failed after its last attempt", "job", id, "attempt", attempt, "error_id", errID, "err", err)
		typ := "internal"
		if strings.Contains(err.Error(), "blob") {
			typ = "blob_write_failed"
		}
		if ferr := s.finishFailed(context.WithoutCancel(ctx), id, typ, errID, map[string]any{
			"message": fmt.Sprintf("the job failed %d times on a server-side error; the server log has the cause under error_id %s", attempt, errID)}); ferr != nil {
			return ferr
		}
		return nil
	}
	s.log.WarnContext(ctx, "job attempt failed; river retries it with backoff", "job", id, "attempt", attempt, "err", err)
	return err
}

// runInSlot runs the job in one of its account's running-job slots
// (fair.go), or returns errNoSlot when they are all taken; the job is
// PROCESSING only once it holds one.
func (s *Service) runInSlot(ctx context.Context, rec *record, run func(context.Context, *record) error) error {
	sl, err := takeSlot(ctx, s.slots, rec.fairKey(), s.cfg.MaxRunningPerAccount)
	if err != nil {
		return err
	}
	defer sl.release(ctx)
	if err := s.startJob(ctx, rec.ID, rec.Kind == "export"); err != nil {
		return err
	}
	return run(ctx, rec)
}

// admit re-checks, when the job is picked up, that its caller may still run
// it (recheck), so that a queued job of a revoked key fails before it fetches
// or reads anything. An import whose earlier attempt reached its commit is
// admitted: runImport finds out whether that load committed.
func (s *Service) admit(ctx context.Context, rec *record) error {
	if rec.Kind == "import" && rec.LoadXID != nil {
		return nil
	}
	return s.recheck(ctx, rec)
}

// asUserError returns the user-facing form of err, or nil for errors that
// deserve a retry (connections, the blob store, a stopping server).
func asUserError(err error) *userError {
	if storageFull(err) {
		return storageFullJobError
	}
	var ie *ingest.Error
	if errors.As(err, &ie) {
		return &userError{Type: ie.Type, Message: ie.Message, Details: ie.Details}
	}
	var ee *export.Error
	if errors.As(err, &ee) {
		return &userError{Type: ee.Type, Message: ee.Message, Details: ee.Details}
	}
	var ue *userError
	if errors.As(err, &ue) {
		return ue
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "53", "57", "40", "58", "XX":
			return nil // connection, resources, shutdown, serialization: retry
		}
		d := map[string]any{"sqlstate": pe.Code}
		if pe.Position > 0 {
			d["position"] = pe.Position
		}
		if pe.Detail != "" {
			d["detail"] = pe.Detail
		}
		if pe.Hint != "" {
			d["hint"] = pe.Hint
		}
		typ := "sql_error"
		if pe.Code == "42501" {
			typ = "permission_denied"
		}
		return &userError{Type: typ, Message: pe.Message, Details: d}
	}
	return nil
}

// progressThrottle reports progress at most twice a second.
type progressThrottle struct {
	s     *Service
	ctx   context.Context
	id    string
	total int64
	last  time.Time
}

func (p *progressThrottle) report(done, rows int64) {
	if now := time.Now(); now.Sub(p.last) >= 500*time.Millisecond {
		p.last = now
		if err := p.s.setProgress(p.ctx, p.id, p.total, done, rows); err != nil {
			p.s.log.WarnContext(p.ctx, "job progress not recorded", "job", p.id, "err", err)
		}
	}
}

// runImport is one attempt of an import job.
func (s *Service) runImport(ctx context.Context, rec *record) error {
	tm := newPhaseTimer()
	pool, err := s.pools.Pool(ctx, rec.PGDatabase, rec.PGRole)
	if err != nil {
		return fmt.Errorf("import: pool: %w", err)
	}
	if rec.LoadXID != nil {
		// An earlier attempt reached the commit of its load: did it commit?
		var status *string
		if err := pool.QueryRow(ctx, "SELECT pg_xact_status($1::xid8)", *rec.LoadXID).Scan(&status); err != nil {
			return fmt.Errorf("import: check earlier load: %w", err)
		}
		switch {
		case status != nil && *status == "committed":
			s.log.InfoContext(ctx, "import already committed by an earlier attempt", "job", rec.ID)
			s.dropUpload(ctx, rec)
			return s.finishDone(ctx, rec.ID, nil, rec.BytesTotal, rec.Rows)
		case status != nil && *status == "in progress":
			return river.JobSnooze(10 * time.Second)
		}
		if err := s.setLoadXID(ctx, rec.ID, nil, 0); err != nil {
			return err
		}
	}
	var src ingest.Source
	fileName := rec.Params.UploadName
	if rec.Params.FileURL != "" {
		f, err := os.CreateTemp(s.cfg.TempDir, "bitkit-import-*")
		if err != nil {
			return fmt.Errorf("import: temp file: %w", err)
		}
		defer os.Remove(f.Name())
		_, err = s.fetchURL(ctx, rec.Params.FileURL, f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("import: temp file: %w", cerr)
		}
		if err != nil {
			return err
		}
		if src, err = ingest.File(f.Name()); err != nil {
			return err
		}
		if fileName == "" {
			fileName = urlFileName(rec.Params.FileURL)
		}
	} else {
		if rec.BlobKey == nil {
			return &userError{Type: "internal", Message: "the job has no uploaded file"}
		}
		attrs, err := s.bucket.Attributes(ctx, *rec.BlobKey)
		if err != nil {
			return fmt.Errorf("import: read blob: %w", err)
		}
		bs := &blobSource{s: s, key: *rec.BlobKey, size: attrs.Size}
		defer bs.cleanup()
		src = bs
	}
	size := src.Size()
	pt := &progressThrottle{s: s, ctx: ctx, id: rec.ID, total: size}
	if err := s.setProgress(ctx, rec.ID, size, 0, 0); err != nil {
		return err
	}
	tm.mark("prepare")
	plan, err := ingest.Analyze(ctx, src, ingest.Options{
		Format: rec.Params.Format, FileName: fileName, Schema: rec.Params.Schema, Table: rec.Params.Table,
		Header: rec.Params.Header, Sheet: rec.Params.Sheet, SQLiteTable: rec.Params.SQLiteTable,
		CSVProfile: rec.Params.CSVProfile, Replace: rec.Params.IfExists == ifExistsReplace,
	})
	if err != nil {
		return err
	}
	tm.mark("analyze")
	// the fetch and the analysis may have taken minutes: check again, right
	// before writing, that the caller may still write
	if err := s.recheck(ctx, rec); err != nil {
		return err
	}
	if s.cfg.CheckStorage != nil {
		if err := s.cfg.CheckStorage(ctx, rec.DatabaseID, size); err != nil {
			var te interface{ ErrorType() string }
			if errors.As(err, &te) {
				return &userError{Type: te.ErrorType(), Message: err.Error()}
			}
			return err
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("import: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	locked, err := lockImport(ctx, tx, rec.ID)
	if err != nil {
		return fmt.Errorf("import: lock: %w", err)
	}
	if !locked {
		return river.JobSnooze(15 * time.Second) // another worker is loading this job
	}
	if rec.State == StateProcessing { // an earlier attempt started and did not finish
		if err := s.countRetry(ctx, rec.ID); err != nil {
			return err
		}
	}
	if err := s.setStatementTimeout(ctx, tx.Exec); err != nil {
		return fmt.Errorf("import: statement timeout: %w", err)
	}
	tm.mark("begin")
	lctx, lcancel := s.withStatementDeadline(ctx)
	rows, err := plan.Load(lctx, tx, func(p ingest.Progress) {
		pt.report(p.BytesDone, p.Rows)
		s.test.Load().loadProgress(ctx, rec.ID, p.Rows)
	})
	err = s.timeoutError(lctx, "the import's load", err)
	lcancel()
	if err != nil {
		// The load took the database over its storage limit: it was
		// frozen and the load's session ended (nothing is left of it).
		if s.cfg.CheckStorage != nil {
			var te interface{ ErrorType() string }
			if qerr := s.cfg.CheckStorage(context.WithoutCancel(ctx), rec.DatabaseID, 0); errors.As(qerr, &te) {
				return &userError{Type: te.ErrorType(), Message: qerr.Error()}
			}
		}
		return err
	}
	tm.mark("load")
	xid, err := loadXID(ctx, tx)
	if err != nil {
		return fmt.Errorf("import: xid: %w", err)
	}
	if err := s.setLoadXID(ctx, rec.ID, &xid, rows); err != nil {
		return fmt.Errorf("import: record xid: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("import: commit: %w", err)
	}
	tm.mark("commit")
	if s.cfg.AfterWrite != nil {
		s.cfg.AfterWrite(context.WithoutCancel(ctx), rec.DatabaseID)
	}
	s.dropUpload(ctx, rec)
	err = s.finishDone(context.WithoutCancel(ctx), rec.ID, nil, size, rows)
	tm.mark("finish")
	s.log.DebugContext(ctx, "import timing", append([]any{"job", rec.ID, "rows", rows}, tm.attrs()...)...)
	return err
}

// phaseTimer measures the phases of a job for the debug log.
type phaseTimer struct {
	start, last time.Time
	phases      []any
}

func newPhaseTimer() *phaseTimer {
	now := time.Now()
	return &phaseTimer{start: now, last: now}
}

func (p *phaseTimer) mark(name string) {
	now := time.Now()
	p.phases = append(p.phases, name, now.Sub(p.last).Round(time.Millisecond))
	p.last = now
}

func (p *phaseTimer) attrs() []any {
	return append(p.phases, "total", time.Since(p.start).Round(time.Millisecond))
}

// lockImport takes the import job's advisory lock in the load's
// transaction, so that one loader at a time works on a job (the upload fast
// path or a river worker); false means another one holds it.
func lockImport(ctx context.Context, tx pgx.Tx, jobID string) (bool, error) {
	var locked bool
	err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", "bitkit-import:"+jobID).Scan(&locked)
	return locked, err
}

// loadXID is the id of the load's transaction, recorded in the job row
// before the commit (see the package comment on exactly-once imports).
func loadXID(ctx context.Context, tx pgx.Tx) (string, error) {
	var xid string
	err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid)
	return xid, err
}

func (s *Service) dropUpload(ctx context.Context, rec *record) {
	if rec.BlobKey == nil {
		return
	}
	if err := s.bucket.Delete(context.WithoutCancel(ctx), *rec.BlobKey); err != nil {
		s.log.WarnContext(ctx, "upload not deleted", "job", rec.ID, "err", err)
	}
}

func urlFileName(raw string) string {
	u := safeURL(raw)
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[i+1:]
	}
	return ""
}

// countingWriter counts bytes written through it and reports them.
type countingWriter struct {
	w      io.Writer
	n      int64
	rows   int64
	report func(done, rows int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.report != nil {
		c.report(c.n, c.rows)
	}
	return n, err
}

// runExport is one attempt of an export job: the query runs in a READ ONLY
// transaction as the caller's role and streams into the blob store.
// export.Write runs the query as exactly one statement (it cannot end the
// transaction), within Config.StatementTimeout.
func (s *Service) runExport(ctx context.Context, rec *record) error {
	pool, err := s.pools.Pool(ctx, rec.PGDatabase, rec.PGRole)
	if err != nil {
		return fmt.Errorf("export: pool: %w", err)
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("export: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := s.setStatementTimeout(ctx, tx.Exec); err != nil {
		return fmt.Errorf("export: statement timeout: %w", err)
	}
	format := export.CSV
	if rec.ExportFormat != nil {
		format = *rec.ExportFormat
	}
	key := exportKey(rec.ID)
	wctx, cancel := s.withStatementDeadline(ctx)
	defer cancel()
	bw, err := s.bucket.NewWriter(wctx, key, &gblob.WriterOptions{ContentType: export.ContentType(format)})
	if err != nil {
		return fmt.Errorf("export: blob writer: %w", err)
	}
	pt := &progressThrottle{s: s, ctx: ctx, id: rec.ID}
	cw := &countingWriter{w: bw, report: pt.report}
	buf := bufio.NewWriterSize(cw, 256<<10) // COPY TO writes one message per row
	rows, err := export.Write(wctx, tx, format, rec.Params.Query, buf, func(n int64) { cw.rows = n })
	if err == nil {
		err = buf.Flush()
	}
	if err != nil {
		err = s.timeoutError(wctx, "the export's query", readOnlyError(err))
		cancel()
		_ = bw.Close()
		return err
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("export: blob write: %w", err)
	}
	return s.finishDone(context.WithoutCancel(ctx), rec.ID, &key, cw.n, rows)
}

// readOnlyError explains PostgreSQL's refusal to change data in the export's
// read-only transaction.
func readOnlyError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "25006" {
		return &userError{Type: "sql_error", Message: "an export cannot change data (it runs in a read-only transaction): " + pe.Message,
			Details: map[string]any{"sqlstate": pe.Code}}
	}
	return err
}

// blobSource streams an upload from the blob store; XLSX and SQLite files
// are copied to a local temporary file on first use.
type blobSource struct {
	s    *Service
	key  string
	size int64
	path string
}

func (b *blobSource) Open(ctx context.Context) (io.ReadCloser, error) {
	r, err := b.s.bucket.NewReader(ctx, b.key, nil)
	if err != nil {
		return nil, fmt.Errorf("read blob: %w", err)
	}
	return r, nil
}

func (b *blobSource) Size() int64 { return b.size }

func (b *blobSource) Path(ctx context.Context) (string, error) {
	if b.path != "" {
		return b.path, nil
	}
	f, err := os.CreateTemp(b.s.cfg.TempDir, "bitkit-import-*")
	if err != nil {
		return "", fmt.Errorf("temp file: %w", err)
	}
	b.path = f.Name()
	r, err := b.Open(ctx)
	if err == nil {
		_, err = io.Copy(f, r)
		r.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copy blob to a temp file: %w", err)
	}
	return b.path, nil
}

func (b *blobSource) cleanup() {
	if b.path != "" {
		os.Remove(b.path)
	}
}
