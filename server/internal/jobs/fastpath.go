package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/ingest"
	"github.com/jackc/pgx/v5"
)

// The fast path of an upload (see docs/jobs.md, "Loading while the upload
// streams"): a plain CSV file is loaded into the target database while it
// is uploaded, and the job is recorded DONE when the request ends. It is a
// speculation: the table is created with the types of the file's first
// bytes, and the load commits only when the whole-file inference gives the
// same plan; otherwise it is rolled back and the job loads the file from
// the blob store as it would have without it.
const (
	// speculateAfter is how much of the file the early types are taken from.
	speculateAfter = 512 << 10
	// fastRecoverAfter is when the river job of a fast-path job runs: it
	// only matters when bitd died between recording the job and committing
	// the load (it then finds out from pg_xact_status what happened); a
	// fast-path job that commits deletes it.
	fastRecoverAfter = 10 * time.Second
	// fastLockTimeout bounds how long the fast path waits for a lock on the
	// target table (the upload waits with it); past it the job path loads.
	fastLockTimeout = "5s"
	// fastSetupTimeout bounds getting a connection and opening the load's
	// transaction.
	fastSetupTimeout = 10 * time.Second
)

// fastMaxOpen bounds how long a fast-path attempt keeps its transaction
// open while the upload streams: a slow client would otherwise hold a
// connection, a transaction (holding back vacuum) and, for an append, a lock
// on the table for as long as it takes. Past it the attempt is dropped and
// the job path loads the file once it is stored. A variable for tests.
var fastMaxOpen = time.Minute

var (
	errFastAbandoned = errors.New("the upload fast path was abandoned")
	errFastTooSlow   = errors.New("the upload took longer than the fast path may keep a transaction open")
)

// fastLoad is one fast-path attempt, owned by the upload request.
type fastLoad struct {
	s      *Service
	id     string
	rec    *record
	opts   ingest.Options
	spec   *ingest.Speculation
	ctx    context.Context // the request's values, not its cancellation
	cancel context.CancelFunc
	abort  chan struct{}
	once   sync.Once
	done   chan struct{}
	start  time.Time
	slow   *time.Timer // drops the attempt after fastMaxOpen

	// set by run before done is closed, then owned by the request
	plan    *ingest.Plan
	tx      pgx.Tx
	rows    int64
	err     error // why the fast path gave up; nil: ready to confirm
	settled bool  // tx is committed or rolled back
	txAt    time.Duration
	readyAt time.Duration
	copyAt  time.Duration
	loadAt  time.Duration
}

// fastParams are the form fields the fast path's plan depends on.
func fastParams(p params) ingest.Options {
	return ingest.Options{Table: p.Table, Schema: p.Schema, Header: p.Header, Format: p.Format, FileName: p.UploadName,
		Replace: p.IfExists == ifExistsReplace}
}

// newFastLoad starts a fast-path attempt for an upload whose form fields
// (read before the file part) give p, or returns nil when the fast path
// does not apply.
func (s *Service) newFastLoad(ctx context.Context, rec *record, p params) *fastLoad {
	if s.test.Load().fastPathOff() || p.Table == "" || p.FileURL != "" || validateImport(&p, true) != nil {
		return nil
	}
	// a database over its storage limit: the job path refuses the import
	if s.cfg.CheckStorage != nil && s.cfg.CheckStorage(ctx, rec.DatabaseID, 0) != nil {
		return nil
	}
	// A replace would hold the table's ACCESS EXCLUSIVE lock (TRUNCATE)
	// for the whole upload, blocking its readers: the job path loads it
	// once the file is stored. (A replace field sent after the file part
	// changes fastParams, so finishFast rolls the attempt back.)
	if p.IfExists == ifExistsReplace {
		return nil
	}
	// the format field or the file name's extension may already rule CSV out
	if f, err := ingest.DetectFormat(p.Format, p.UploadName, nil); err != nil || f != ingest.FormatCSV {
		return nil
	}
	// Each attempt holds a connection of the caller's pool for the whole
	// upload: at most Workers at once, like the job path.
	select {
	case s.fastSlots <- struct{}{}:
	default:
		return nil
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &fastLoad{s: s, id: rec.ID, rec: rec, opts: fastParams(p), spec: ingest.NewSpeculation(p.Header, speculateAfter),
		ctx: cctx, cancel: cancel, abort: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	f.slow = time.AfterFunc(fastMaxOpen, func() {
		f.spec.Drop(errFastTooSlow)
		f.once.Do(func() { close(f.abort) })
	})
	go f.run()
	return f
}

// run opens a transaction on the target database (while the first bytes
// are profiled), waits for the early profile, creates (or checks) the table
// and streams the upload into COPY.
func (f *fastLoad) run() {
	defer close(f.done)
	if err := f.begin(); err != nil {
		f.giveUp(err)
		return
	}
	f.txAt = time.Since(f.start)
	select {
	case <-f.spec.Ready():
	case <-f.abort:
		f.giveUp(errFastAbandoned)
		return
	}
	select {
	case <-f.abort: // e.g. fastMaxOpen passed while the profile formed
		f.giveUp(errFastAbandoned)
		return
	default:
	}
	f.readyAt = time.Since(f.start)
	if f.spec.Profile() == nil {
		f.giveUp(errors.New("not a plain UTF-8 CSV file"))
		return
	}
	plan, err := f.spec.Plan(f.opts)
	if err != nil {
		f.giveUp(err)
		return
	}
	f.plan = plan
	f.copyAt = time.Since(f.start)
	rows, err := plan.Load(f.ctx, f.tx, nil)
	f.loadAt = time.Since(f.start)
	if err != nil {
		if r := f.spec.Reason(); r != "" {
			err = fmt.Errorf("speculation diverged: %s (%w)", r, err)
		}
		f.giveUp(err)
		return
	}
	f.rows = rows
}

// begin opens the load's transaction and takes the job's advisory lock, in
// at most fastSetupTimeout (a busy pool or database: the job path loads).
func (f *fastLoad) begin() error {
	ctx, cancel := context.WithTimeout(f.ctx, fastSetupTimeout)
	defer cancel()
	pool, err := f.s.pools.Pool(ctx, f.rec.PGDatabase, f.rec.PGRole)
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	f.tx = tx
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+fastLockTimeout+"'"); err != nil {
		return err
	}
	if err := f.s.setStatementTimeout(ctx, tx.Exec); err != nil {
		return err
	}
	locked, err := lockImport(ctx, tx, f.id)
	if err != nil {
		return err
	}
	if !locked {
		return errors.New("the job's advisory lock is taken")
	}
	return nil
}

// giveUp ends the attempt: the upload goes on without it, and its
// transaction (if any) is rolled back.
func (f *fastLoad) giveUp(err error) {
	if f.err == nil {
		f.err = err
	}
	f.spec.Drop(errFastAbandoned)
	f.rollback()
}

func (f *fastLoad) rollback() {
	if f.tx == nil || f.settled {
		return
	}
	f.settled = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 10*time.Second)
	defer cancel()
	_ = f.tx.Rollback(ctx)
}

// close ends the attempt whatever its state (the request's deferred
// clean-up): nothing it did stays uncommitted.
func (f *fastLoad) close() {
	f.slow.Stop()
	f.once.Do(func() { close(f.abort) })
	f.spec.Drop(errFastAbandoned)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		f.cancel() // a COPY stuck in the database: drop the connection
		<-f.done
	}
	f.rollback()
	f.cancel()
	<-f.s.fastSlots
}

// finishFast ends a fast-path attempt after the upload and the form are
// read (rec is the job as the normal path would record it). It returns
// true when the job is recorded (DONE, or PROCESSING when the commit's
// outcome is left to the job's river run), false when the caller must take
// the normal path, and an error to answer the request with.
func (s *Service) finishFast(ctx context.Context, f *fastLoad, rec *record, size int64) (bool, error) {
	f.slow.Stop()          // the upload is complete
	f.spec.CloseWrite(nil) // storeUpload closed it already; a no-op then
	select {
	case <-f.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	uploaded := time.Since(f.start)
	widened := 0
	if f.plan != nil {
		widened = f.plan.Widened()
	}
	outcome := func(o string, err error) {
		ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
		gateWait, dataWait, writeWait := f.spec.Waits()
		s.log.DebugContext(ctx, "upload fast path", "job", rec.ID, "outcome", o, "err", err, "widened", widened,
			"peak_queued", f.spec.PeakQueued(), "tx", ms(f.txAt), "ready", ms(f.readyAt), "copy_start", ms(f.copyAt),
			"copy_end", ms(f.loadAt), "upload_end", ms(uploaded), "total", ms(time.Since(f.start)),
			"copy_waited_profile", ms(gateWait), "copy_waited_upload", ms(dataWait), "upload_waited_copy", ms(writeWait))
		s.test.Load().fastPathEnded(rec.ID, o, err)
	}
	err := f.err
	if err == nil && fastParams(rec.Params) != f.opts {
		err = errors.New("form fields after the file changed the import")
	}
	if err == nil {
		err = f.plan.Confirm(rec.Params.CSVProfile, f.rows)
	}
	if err != nil {
		f.rollback()
		outcome("fallback", err)
		return false, nil
	}
	// Storage quota: a load that took the database over its limit (its
	// uncommitted rows count) is rolled back; the job path then refuses
	// the import, or loads it if it fits after all.
	if s.cfg.CheckStorage != nil {
		if err := s.cfg.CheckStorage(ctx, rec.DatabaseID, 0); err != nil {
			f.rollback()
			outcome("fallback", err)
			return false, nil
		}
	}
	xid, err := loadXID(ctx, f.tx)
	if err != nil {
		f.rollback()
		outcome("fallback", err)
		return false, nil
	}
	rec.State, rec.LoadXID, rec.Rows, rec.BytesDone = StateProcessing, &xid, f.rows, size
	riverID, err := s.insertJobAt(ctx, rec, time.Now().Add(s.fastRecover))
	if err != nil {
		f.rollback()
		return false, err
	}
	// The job is recorded with the load's transaction id: whatever happens
	// from here, its river run finds out (pg_xact_status) and finishes it.
	cctx := context.WithoutCancel(ctx)
	if s.crashAt(rec, "before_commit") {
		return true, nil // close rolls back, as a dead connection would
	}
	f.settled = true
	if err := f.tx.Commit(cctx); err != nil {
		s.log.WarnContext(ctx, "upload fast path: commit failed; the job's river run settles it", "job", rec.ID, "err", err)
		outcome("commit_failed", err)
		return true, nil
	}
	if s.crashAt(rec, "after_commit") {
		return true, nil
	}
	if s.cfg.AfterWrite != nil {
		s.cfg.AfterWrite(cctx, rec.DatabaseID)
	}
	if err := s.finishDone(cctx, rec.ID, nil, size, f.rows); err != nil {
		s.log.WarnContext(ctx, "upload fast path: job not marked DONE; its river run will", "job", rec.ID, "err", err)
		outcome("loaded", nil)
		return true, nil
	}
	s.dropUpload(cctx, rec)
	if _, err := s.river.JobDelete(cctx, riverID); err != nil {
		s.log.DebugContext(ctx, "upload fast path: river job not deleted (it finds the job DONE)", "job", rec.ID, "err", err)
	}
	if j, err := s.getJob(cctx, rec.ID); err == nil {
		*rec = *j
	} else {
		rec.State = StateDone
	}
	outcome("loaded", nil)
	return true, nil
}

// crashAt asks the test hook whether the fast path should stop at point, as
// if bitd died there.
func (s *Service) crashAt(rec *record, point string) bool {
	return s.test.Load().crashAt(rec.Params.Table, point)
}
