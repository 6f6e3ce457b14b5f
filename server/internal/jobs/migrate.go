package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// migrateLockKey is the session advisory lock held while migrating.
const migrateLockKey = 0x6269746a6f6273 // "bitjobs"

// migrations are this package's versioned schema changes, applied in order.
var migrations = []string{
	1: `CREATE TABLE bitkit_jobs (
	id             uuid PRIMARY KEY,
	kind           text NOT NULL CHECK (kind IN ('import', 'export')),
	owner_id       text NOT NULL,
	database_id    text NOT NULL,
	database_name  text NOT NULL,
	pg_database    text NOT NULL,
	pg_role        text NOT NULL,
	state          text NOT NULL DEFAULT 'RECEIVED' CHECK (state IN ('RECEIVED', 'PROCESSING', 'DONE', 'FAILED')),
	retries        integer NOT NULL DEFAULT 0,
	error_type     text,
	error_id       text,
	error_details  jsonb,
	bytes_total    bigint NOT NULL DEFAULT 0,
	bytes_done     bigint NOT NULL DEFAULT 0,
	rows_done      bigint NOT NULL DEFAULT 0,
	params         jsonb NOT NULL DEFAULT '{}',
	blob_key       text,
	export_format  text,
	file_name      text,
	load_xid       text,
	date_created   timestamptz NOT NULL DEFAULT now(),
	date_finished  timestamptz
);
CREATE INDEX bitkit_jobs_owner_idx ON bitkit_jobs (owner_id, date_created);`,
	// 2: export retention (retention.go). file_deleted_at is when the sweep
	// deleted the job's blob (an export's file, a FAILED import's upload);
	// the partial index holds exactly the rows the sweep may still have to
	// visit, ordered by date_finished.
	2: `ALTER TABLE bitkit_jobs ADD COLUMN file_deleted_at timestamptz;
CREATE INDEX bitkit_jobs_retention_idx ON bitkit_jobs (date_finished)
	WHERE ` + sweepPredicate + `;`,
	// 3: the credential that created a job (re-checked before the job
	// writes) and the caller's account (the per-account cap on running
	// jobs, fair.go). NULL in rows of older bitds: no credential re-check,
	// owner_id as the fairness key.
	3: `ALTER TABLE bitkit_jobs ADD COLUMN credential_id text, ADD COLUMN account_id text;`,
}

// Migrate brings the metadata database up to date: river's own tables
// (rivermigrate) and this package's bitkit_jobs table, versioned in
// bitkit_jobs_migrations, through the store's migration runner (one session
// advisory lock serialises replicas that start together). It is safe to
// call on every start.
func Migrate(ctx context.Context, metadata *pgxpool.Pool) error {
	return migrateTo(ctx, metadata, -1)
}

// migrateTo applies the migrations up to version upto, all when upto < 0
// (tests build the schema of an older bitd with it).
func migrateTo(ctx context.Context, metadata *pgxpool.Pool, upto int) error {
	set := store.MigrationSet{
		Table:   "bitkit_jobs_migrations",
		LockKey: migrateLockKey,
		Before: func(ctx context.Context, _ *pgxpool.Conn) error {
			m, err := rivermigrate.New(riverpgxv5.New(metadata), nil)
			if err != nil {
				return fmt.Errorf("jobs migrate: river: %w", err)
			}
			if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
				return fmt.Errorf("jobs migrate: river: %w", err)
			}
			return nil
		},
	}
	for v, sql := range migrations {
		if v > 0 {
			set.Migrations = append(set.Migrations, store.Migration{Version: v, Name: fmt.Sprintf("jobs %d", v), SQL: sql})
		}
	}
	if err := store.ApplyMigrations(ctx, metadata, set, upto); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}
