package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/ingest"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"github.com/jackc/pgx/v5"
)

// Job states (wire contract).
const (
	StateReceived   = "RECEIVED"
	StateProcessing = "PROCESSING"
	StateDone       = "DONE"
	StateFailed     = "FAILED"
)

// record is one row of bitkit_jobs.
type record struct {
	ID           string
	Kind         string
	OwnerID      string
	DatabaseID   string
	DatabaseName string
	PGDatabase   string
	PGRole       string
	State        string
	Retries      int
	ErrorType    *string
	ErrorID      *string
	ErrorDetails []byte
	BytesTotal   int64
	BytesDone    int64
	Rows         int64
	Params       params
	BlobKey      *string
	ExportFormat *string
	FileName     *string
	LoadXID      *string
	DateCreated  time.Time
	DateFinished *time.Time
	// FileDeletedAt is when the retention sweep deleted the job's blob.
	FileDeletedAt *time.Time
	// CredentialID is the API key or access token that created the job
	// (re-checked before the job writes); nil for jobs of older bitds.
	CredentialID *string
	// AccountID is the caller's account, the key of the per-account cap on
	// running jobs; nil for jobs of older bitds (OwnerID is used).
	AccountID *string
}

// fairKey is the key of the job's per-account cap on running jobs.
func (r *record) fairKey() string {
	if r.AccountID != nil && *r.AccountID != "" {
		return "account:" + *r.AccountID
	}
	return r.OwnerID
}

// params are the request's parameters, kept as JSON in the job row.
type params struct {
	// import
	Table       string `json:"table_name,omitempty"`
	Schema      string `json:"schema_name,omitempty"`
	Header      string `json:"infer_header,omitempty"`
	FileURL     string `json:"file_url,omitempty"`
	UploadName  string `json:"upload_name,omitempty"`
	Format      string `json:"format,omitempty"`
	Sheet       string `json:"sheet,omitempty"`
	SQLiteTable string `json:"sqlite_table,omitempty"`
	// IfExists is what an import does to an existing table: append
	// (default, stored as "") or replace.
	IfExists string `json:"if_exists,omitempty"`
	// CSVProfile is the CSV inference pass, run while the file was uploaded.
	CSVProfile *ingest.CSVProfile `json:"csv_profile,omitempty"`
	// export
	Query string `json:"query_string,omitempty"`
}

const recordColumns = `id::text, kind, owner_id, database_id, database_name, pg_database, pg_role, state, retries,
	error_type, error_id, error_details, bytes_total, bytes_done, rows_done, params, blob_key, export_format, file_name,
	load_xid, date_created, date_finished, file_deleted_at, credential_id, account_id`

func scanRecord(row pgx.Row) (*record, error) {
	var r record
	var p []byte
	err := row.Scan(&r.ID, &r.Kind, &r.OwnerID, &r.DatabaseID, &r.DatabaseName, &r.PGDatabase, &r.PGRole, &r.State, &r.Retries,
		&r.ErrorType, &r.ErrorID, &r.ErrorDetails, &r.BytesTotal, &r.BytesDone, &r.Rows, &p, &r.BlobKey, &r.ExportFormat, &r.FileName,
		&r.LoadXID, &r.DateCreated, &r.DateFinished, &r.FileDeletedAt, &r.CredentialID, &r.AccountID)
	if err != nil {
		return nil, err
	}
	if err := jsonx.Unmarshal(p, &r.Params); err != nil {
		return nil, err
	}
	return &r, nil
}

var errNoJob = errors.New("job not found")

// getJob loads a job by id (any owner).
func (s *Service) getJob(ctx context.Context, id string) (*record, error) {
	r, err := scanRecord(s.meta.QueryRow(ctx, "SELECT "+recordColumns+" FROM bitkit_jobs WHERE id = $1::uuid", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoJob
	}
	return r, err
}

// insertJob stores a new job and enqueues its river job in one transaction.
func (s *Service) insertJob(ctx context.Context, r *record) error {
	_, err := s.insertJobAt(ctx, r, time.Time{})
	return err
}

// insertJobAt is insertJob with the river job scheduled at runAt (zero: at
// once). The row takes r.State (default RECEIVED), r.LoadXID, r.Rows and
// r.BytesDone. It returns the river job's id.
func (s *Service) insertJobAt(ctx context.Context, r *record, runAt time.Time) (int64, error) {
	p, err := jsonx.Marshal(r.Params)
	if err != nil {
		return 0, err
	}
	if r.State == "" {
		r.State = StateReceived
	}
	tx, err := s.meta.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	err = tx.QueryRow(ctx, `INSERT INTO bitkit_jobs (id, kind, owner_id, database_id, database_name, pg_database, pg_role, state,
		bytes_total, params, blob_key, export_format, file_name, load_xid, rows_done, bytes_done, credential_id, account_id)
		VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING date_created`,
		r.ID, r.Kind, r.OwnerID, r.DatabaseID, r.DatabaseName, r.PGDatabase, r.PGRole, r.State, r.BytesTotal, p, r.BlobKey,
		r.ExportFormat, r.FileName, r.LoadXID, r.Rows, r.BytesDone, r.CredentialID, r.AccountID).
		Scan(&r.DateCreated)
	if err != nil {
		return 0, err
	}
	// A traced request hands its trace context to the job's run.
	tp := tracing.Inject(ctx)
	var args jobArgs = importArgs{JobID: r.ID, Traceparent: tp}
	if r.Kind == "export" {
		args = exportArgs{JobID: r.ID, Traceparent: tp}
	}
	opts := s.insertOpts()
	opts.ScheduledAt = runAt
	res, err := s.river.InsertTx(ctx, tx, args, opts)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, tx.Commit(ctx)
}

// startJob moves a job to PROCESSING; with retry, a job that was already
// PROCESSING (an earlier attempt died or failed) counts one more retry.
func (s *Service) startJob(ctx context.Context, id string, retry bool) error {
	_, err := s.meta.Exec(ctx, `UPDATE bitkit_jobs SET retries = retries + CASE WHEN $2 AND state = 'PROCESSING' THEN 1 ELSE 0 END,
		state = 'PROCESSING' WHERE id = $1::uuid AND state IN ('RECEIVED', 'PROCESSING')`, id, retry)
	return err
}

// countRetry counts one more retry of a job.
func (s *Service) countRetry(ctx context.Context, id string) error {
	_, err := s.meta.Exec(ctx, `UPDATE bitkit_jobs SET retries = retries + 1 WHERE id = $1::uuid`, id)
	return err
}

func (s *Service) setProgress(ctx context.Context, id string, total, done, rows int64) error {
	_, err := s.meta.Exec(ctx, `UPDATE bitkit_jobs SET bytes_total = greatest(bytes_total, $2), bytes_done = $3, rows_done = $4
		WHERE id = $1::uuid`, id, total, done, rows)
	return err
}

func (s *Service) setLoadXID(ctx context.Context, id string, xid *string, rows int64) error {
	_, err := s.meta.Exec(ctx, `UPDATE bitkit_jobs SET load_xid = $2, rows_done = $3 WHERE id = $1::uuid`, id, xid, rows)
	return err
}

func (s *Service) finishDone(ctx context.Context, id string, blobKey *string, bytesDone, rows int64) error {
	var kind string
	var secs float64
	err := s.meta.QueryRow(ctx, `UPDATE bitkit_jobs SET state = 'DONE', date_finished = now(), bytes_done = greatest(bytes_total, $3),
		bytes_total = greatest(bytes_total, $3), rows_done = $4, blob_key = coalesce($2, blob_key), error_type = NULL, error_id = NULL, error_details = NULL
		WHERE id = $1::uuid AND state <> 'DONE'
		RETURNING kind, extract(epoch FROM date_finished - date_created)::float8`, id, blobKey, bytesDone, rows).Scan(&kind, &secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // DONE already
	}
	if err == nil {
		s.cfg.Metrics.JobFinished(kind, StateDone, time.Duration(secs*float64(time.Second)), rows, bytesDone)
	}
	return err
}

func (s *Service) finishFailed(ctx context.Context, id, errType, errID string, details map[string]any) error {
	d, err := jsonx.Marshal(details)
	if err != nil {
		return err
	}
	var kind string
	var secs float64
	err = s.meta.QueryRow(ctx, `UPDATE bitkit_jobs SET state = 'FAILED', date_finished = now(), error_type = $2, error_id = $3,
		error_details = $4 WHERE id = $1::uuid AND state <> 'DONE'
		RETURNING kind, extract(epoch FROM date_finished - date_created)::float8`, id, errType, errID, d).Scan(&kind, &secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // DONE already
	}
	if err == nil {
		s.cfg.Metrics.JobFinished(kind, StateFailed, time.Duration(secs*float64(time.Second)), 0, 0)
	}
	return err
}

// QueueCounts returns how many jobs of each kind wait (RECEIVED) and run
// (PROCESSING) across every bitd sharing the metadata database, zeros
// included (metrics, at scrape time).
func (s *Service) QueueCounts(ctx context.Context) ([]metrics.JobCount, error) {
	rows, err := s.meta.Query(ctx, `SELECT k.kind, st.state, count(j.id)
		FROM unnest(ARRAY['import', 'export']) k(kind) CROSS JOIN unnest(ARRAY['RECEIVED', 'PROCESSING']) st(state)
		LEFT JOIN bitkit_jobs j ON j.kind = k.kind AND j.state = st.state
		GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (metrics.JobCount, error) {
		var c metrics.JobCount
		err := r.Scan(&c.Kind, &c.State, &c.N)
		return c, err
	})
}
