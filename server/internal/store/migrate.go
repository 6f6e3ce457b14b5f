package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The metadata database's schema is versioned: each set of migrations (the
// store's own, embedded from migrations/NNNN_name.sql, and the job queue's)
// is applied by ApplyMigrations, one migration per transaction, recorded in
// the set's version table, under a session advisory lock so that replicas
// starting together apply each migration once.

//go:embed migrations/*.sql
var migrationsFS embed.FS

// migrationLockKey is the advisory lock key guarding the store's migrations.
const migrationLockKey = 0x6269746b6974 // "bitkit"

// A Migration is one versioned schema change of a migration set.
type Migration struct {
	Version int    // 1, 2, …: applied in order, each once
	Name    string // for the version table and error messages
	SQL     string // one or more statements, run in one transaction
}

// MigrationSet names a set of migrations and where its versions are kept.
type MigrationSet struct {
	// Table records the applied versions (created when missing).
	Table string
	// LockKey is the session advisory lock held while migrating.
	LockKey int64
	// Before, when set, runs under the lock before the set's migrations
	// (e.g. a library's own migrator).
	Before func(ctx context.Context, conn *pgxpool.Conn) error
	// Migrations in any order; versions must be unique.
	Migrations []Migration
}

// ApplyMigrations applies the set's migrations up to version upto (all of
// them when upto < 0) that its version table does not list yet.
func ApplyMigrations(ctx context.Context, db *pgxpool.Pool, set MigrationSet, upto int) error {
	ms := append([]Migration(nil), set.Migrations...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Table, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", set.LockKey); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", set.Table, err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", set.LockKey)
	}()
	if set.Before != nil {
		if err := set.Before(ctx, conn); err != nil {
			return err
		}
	}
	tbl := pgx.Identifier{set.Table}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tbl+` (
		version integer PRIMARY KEY, name text, applied_at timestamptz NOT NULL DEFAULT now());
		ALTER TABLE `+tbl+` ADD COLUMN IF NOT EXISTS name text`); err != nil {
		return fmt.Errorf("migrate %s: %w", set.Table, err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM `+tbl)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Table, err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Table, err)
	}
	done := map[int]bool{}
	for _, v := range applied {
		done[int(v)] = true
	}
	for _, m := range ms {
		if done[m.Version] || (upto >= 0 && m.Version > upto) {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+tbl+` (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: apply %s: %w", set.Table, m.Name, err)
		}
	}
	return nil
}

func loadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, p := range entries {
		base := p[strings.LastIndex(p, "/")+1:]
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{v, base, string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies the store's pending embedded migrations
// (schema_migrations records them).
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationsFS)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	return ApplyMigrations(ctx, s.DB, MigrationSet{Table: "schema_migrations", LockKey: migrationLockKey, Migrations: ms}, -1)
}
