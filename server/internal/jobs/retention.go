package jobs

import (
	"context"
	"fmt"
	"time"

	"gocloud.dev/gcerrors"
)

// DefaultExportRetention is how long export files are kept when
// Config.ExportRetention is not set: 7 days.
const DefaultExportRetention = 7 * 24 * time.Hour

// sweepPredicate selects the job rows whose blob the retention sweep may
// still have to delete: a DONE export's file, and the upload of a FAILED
// import (a DONE import's upload is deleted when it finishes). It is also
// the predicate of the partial index bitkit_jobs_retention_idx (migration
// 2), so the sweep's query is answered from that index.
const sweepPredicate = `blob_key IS NOT NULL AND file_deleted_at IS NULL
	AND ((kind = 'export' AND state = 'DONE') OR (kind = 'import' AND state = 'FAILED'))`

// sweepBatch is how many rows one sweep transaction locks.
const sweepBatch = 100

// sweepFirstDelay is when the first sweep runs after New (or after
// SweepInterval when that is shorter).
const sweepFirstDelay = time.Minute

// sweepResult counts what one sweep deleted.
type sweepResult struct {
	Exports, Uploads int
}

// startSweeper starts the periodic retention sweep unless
// Config.SweepInterval is negative.
func (s *Service) startSweeper() {
	if s.cfg.SweepInterval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.sweepStop, s.sweepDone = cancel, make(chan struct{})
	go func() {
		defer close(s.sweepDone)
		t := time.NewTimer(min(sweepFirstDelay, s.cfg.SweepInterval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := s.sweep(ctx, sweepBatch); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "export retention sweep failed; it runs again later", "err", err)
			}
			t.Reset(s.cfg.SweepInterval)
		}
	}()
}

// stopSweeper ends the sweep loop and waits for it (a sweep under way is
// cancelled; its transaction rolls back, and the blobs it already deleted
// are deleted again, harmlessly, by the next sweep).
func (s *Service) stopSweeper() {
	if s.sweepStop == nil {
		return
	}
	s.sweepStop()
	<-s.sweepDone
}

// sweep deletes the blobs of jobs that finished more than ExportRetention
// ago (per the metadata database's clock) and records the deletion in
// file_deleted_at. It works in transactions of at most batch rows locked
// FOR UPDATE SKIP LOCKED, so sweeps of several replicas at once share the
// work and never wait for each other. A blob that is already gone counts
// as deleted; a blob that cannot be deleted leaves its row for the next
// sweep. It logs at info level when it deleted something.
func (s *Service) sweep(ctx context.Context, batch int) (sweepResult, error) {
	var total sweepResult
	defer func() {
		if total.Exports+total.Uploads > 0 {
			s.log.InfoContext(ctx, "export retention sweep deleted expired files",
				"exports", total.Exports, "uploads", total.Uploads, "retention", s.cfg.ExportRetention.String())
		}
	}()
	for {
		res, n, failed, err := s.sweepBatch(ctx, batch)
		total.Exports += res.Exports
		total.Uploads += res.Uploads
		if err != nil {
			return total, err
		}
		// a short batch was the last one; a batch with a failed delete
		// stops the sweep, so that the same rows are not picked up again
		// at once
		if n < batch || failed > 0 {
			return total, nil
		}
	}
}

// sweepBatch handles one transaction: it returns what it deleted, how many
// rows it locked and how many blobs it could not delete.
func (s *Service) sweepBatch(ctx context.Context, batch int) (res sweepResult, n, failed int, err error) {
	tx, err := s.meta.Begin(ctx)
	if err != nil {
		return res, 0, 0, fmt.Errorf("retention sweep: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT id::text, kind, blob_key FROM bitkit_jobs
		WHERE `+sweepPredicate+` AND date_finished < now() - $1::bigint * interval '1 microsecond'
		ORDER BY date_finished LIMIT $2 FOR UPDATE SKIP LOCKED`, s.cfg.ExportRetention.Microseconds(), batch)
	if err != nil {
		return res, 0, 0, fmt.Errorf("retention sweep: %w", err)
	}
	type cand struct{ id, kind, key string }
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.id, &c.kind, &c.key); err != nil {
			rows.Close()
			return res, 0, 0, fmt.Errorf("retention sweep: %w", err)
		}
		cands = append(cands, c)
	}
	if err := rows.Err(); err != nil {
		return res, 0, 0, fmt.Errorf("retention sweep: %w", err)
	}
	var done []string
	var counted sweepResult
	for _, c := range cands {
		if err := s.bucket.Delete(ctx, c.key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			if ctx.Err() != nil {
				return res, len(cands), failed, ctx.Err()
			}
			failed++
			s.log.WarnContext(ctx, "retention sweep: blob not deleted; the next sweep tries again", "job", c.id, "kind", c.kind, "err", err)
			continue
		}
		done = append(done, c.id)
		if c.kind == "export" {
			counted.Exports++
		} else {
			counted.Uploads++
		}
	}
	if len(done) == 0 {
		return res, len(cands), failed, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE bitkit_jobs SET file_deleted_at = now() WHERE id = ANY($1::uuid[])`, done); err != nil {
		return res, len(cands), failed, fmt.Errorf("retention sweep: record: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, len(cands), failed, fmt.Errorf("retention sweep: commit: %w", err)
	}
	return counted, len(cands), failed, nil
}

// exportExpired reports whether an export's file is gone for good: the
// sweep recorded its deletion, or the blob is missing (notFound) and the
// export finished more than ExportRetention ago (a sweep deleting it right
// now, before its transaction commits).
func (s *Service) exportExpired(rec *record, notFound bool) bool {
	if rec.FileDeletedAt != nil {
		return true
	}
	return notFound && rec.DateFinished != nil && s.now().Sub(*rec.DateFinished) > s.cfg.ExportRetention
}

// errBlobNotFound reports whether err is the blob store's "no such blob".
func errBlobNotFound(err error) bool {
	return err != nil && gcerrors.Code(err) == gcerrors.NotFound
}
