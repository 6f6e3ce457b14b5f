// Package store is bitd's metadata store: accounts, users, API keys, access
// tokens, databases, collaborators, service accounts and usage, kept in a
// PostgreSQL database (default name "bitkit") through pgx v5. It also
// provisions the real PostgreSQL databases and roles behind platform
// databases (provision.go). HTTP handlers never build SQL: they call the
// methods here.
//
// Schema migrations are embedded (migrations/NNNN_name.sql), applied at
// start-up inside one transaction that holds a transaction-scoped advisory
// lock, so replicas starting together apply each version exactly once, and
// recorded in schema_migrations. Other packages (the job queue) run their own
// migrations against the same database.
//
// A Store is safe for concurrent use. Close releases its pools.
package store

import (
	"context"
	"errors"
	"fmt"
	"github.com/bitkit-dev/bitkit/internal/pgalive"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors returned by store methods.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// ReservedError says a database name is reserved after a delete.
type ReservedError struct{ Until time.Time }

func (e *ReservedError) Error() string {
	return "the name is reserved until " + e.Until.UTC().Format(time.RFC3339)
}

// Store is the metadata store plus an admin pool on the cluster that holds
// the platform databases.
type Store struct {
	// DB is the metadata database pool (other packages may run their own
	// migrations and queries on it, e.g. the job queue).
	DB *pgxpool.Pool
	// admin is a pool on the cluster's maintenance database, connected with
	// the admin URL, used for CREATE/DROP DATABASE and roles.
	admin     *pgxpool.Pool
	adminCfg  *pgxpool.Config
	metaName  string
	secret    []byte
	connLimit int
	maxDBs    int // Options.MaxDatabasesPerAccount
	log       *slog.Logger
	// tempLimit is Options.TempFileLimit; tempLimitOK says the admin may
	// set temp_file_limit (superuser, or SET ON PARAMETER granted).
	tempLimit   string
	tempLimitOK bool
	// fnWarned: the warning that provisioning could not revoke the
	// large-object and WAL-message functions was logged.
	fnWarned atomic.Bool
	// hooks are the in-process subscribers of access changes (notify.go).
	hooks accessHooks
	// bg is the database stock and the reaper of deleted databases (stock.go).
	bg background
	// clusters caches the Stores of the other clusters (clusters.go); root
	// and clusterName are set on those (root is the default cluster's).
	clusters    clusterSet
	root        *Store
	clusterName string
	// repairs and health are the pending start-up repairs of other
	// clusters and the last cluster pings (clusterrepair.go).
	repairs clusterRepairs
	health  healthCache
}

// Options configure Open.
type Options struct {
	// AdminURL is the cluster admin connection string (superuser, or a role
	// with CREATEDB and CREATEROLE). Its database is the maintenance database.
	AdminURL string
	// MetadataDB is the metadata database name (created when missing).
	MetadataDB string
	// Secret is the server secret that role passwords derive from.
	Secret []byte
	// RoleConnLimit caps connections per platform role (default 32).
	RoleConnLimit int
	// MaxDatabasesPerAccount caps the live databases of an account
	// (CreateDatabase answers *TooManyDatabasesError); 0 means no cap.
	MaxDatabasesPerAccount int
	// TempFileLimit is the temp_file_limit set on every platform database,
	// in config.ParseTempFileLimit's canonical form ("5GB", "1536kB"), or
	// "-1" for none (bitd then removes the setting it made). When it is
	// not "", Open applies it to every live platform database whose
	// setting differs, and CreateDatabase sets it on new ones, provided
	// the admin may set the parameter (otherwise Open logs one warning).
	// "" leaves the setting alone (admin tools).
	TempFileLimit string
	// NameReservation is how long a deleted database's name stays
	// reserved: 0 means ReservationPeriod (30 days), negative means not at
	// all.
	NameReservation time.Duration
	// Logger receives start-up and provisioning warnings (nil: discarded).
	Logger *slog.Logger
	// MustExist refuses to create a missing metadata database (for admin
	// tools, where a missing one means a mistyped name).
	MustExist bool
}

// Open connects, creates the metadata database if it is missing, and applies
// pending migrations.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.MetadataDB == "" {
		o.MetadataDB = "bitkit"
	}
	if o.RoleConnLimit <= 0 {
		o.RoleConnLimit = 32
	}
	if o.TempFileLimit != "" && !validTempFileLimit(o.TempFileLimit) {
		return nil, fmt.Errorf("store: TempFileLimit %q is not in canonical form (see config.ParseTempFileLimit)", o.TempFileLimit)
	}
	acfg, err := pgxpool.ParseConfig(o.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %s", redactParseError(err))
	}
	acfg.MaxConns = 4
	acfg.ShouldPing = shouldPing
	admin, err := pgxpool.NewWithConfig(ctx, acfg)
	if err != nil {
		return nil, fmt.Errorf("connect to cluster: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{admin: admin, adminCfg: acfg, metaName: o.MetadataDB, secret: o.Secret, connLimit: o.RoleConnLimit, maxDBs: o.MaxDatabasesPerAccount,
		log: o.Logger, tempLimit: o.TempFileLimit}
	s.bg.reservation = o.NameReservation
	if err := s.ensureDatabase(ctx, o.MetadataDB, o.MustExist); err != nil {
		admin.Close()
		return nil, err
	}
	mcfg := acfg.Copy()
	mcfg.ConnConfig.Database = o.MetadataDB
	mcfg.MaxConns = 16
	mcfg.ShouldPing = shouldPing
	s.DB, err = pgxpool.NewWithConfig(ctx, mcfg)
	if err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to metadata database %q: %w", o.MetadataDB, err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if len(o.Secret) > 0 {
		if err := s.checkSecret(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.tempLimit != "" {
		s.initTempFileLimit(ctx)
	}
	s.ensureAdminMemberships(ctx)
	s.ensureTenantGroups(ctx)
	s.ensurePublicRoles(ctx)
	s.hideActivityEverywhere(ctx)
	s.finishDeletes(ctx)
	return s, nil
}

// checkSecret records the server secret's fingerprint on first use and
// refuses a different secret later: role passwords derive from it, and a
// replica with another secret would fail every login as a platform role and
// keep resetting the roles' passwords (see pgpool) under the others.
func (s *Store) checkSecret(ctx context.Context) error {
	fp := secret.Fingerprint(s.secret)
	var stored string
	err := s.DB.QueryRow(ctx, `WITH ins AS (INSERT INTO server_settings (name, value) VALUES ('secret_fingerprint', $1)
			ON CONFLICT (name) DO NOTHING RETURNING value)
		SELECT value FROM ins UNION ALL SELECT value FROM server_settings WHERE name = 'secret_fingerprint' LIMIT 1`, fp).Scan(&stored)
	if err != nil {
		return fmt.Errorf("check server secret: %w", err)
	}
	if stored != fp {
		return errors.New("the server secret differs from the one this metadata database was set up with: " +
			"every bitd sharing it must use the same BITD_SECRET (or DATA/secret), since the database roles' passwords derive from it")
	}
	return nil
}

// redactParseError keeps pgconn's parse error from echoing the URL (which
// may hold a password).
func redactParseError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "invalid connection string (expected postgres://user:password@host:port/dbname)"
	}
	return "invalid connection string"
}

// Close releases the pools.
func (s *Store) Close() {
	s.closeClusters()
	if s.DB != nil {
		s.DB.Close()
	}
	s.admin.Close()
}

// MetadataDB is the metadata database name.
func (s *Store) MetadataDB() string { return s.metaName }

// AdminConfig returns a copy of the cluster admin connection config.
func (s *Store) AdminConfig() *pgxpool.Config { return s.adminCfg.Copy() }

// Ping checks the metadata database.
func (s *Store) Ping(ctx context.Context) error { return s.DB.Ping(ctx) }

func (s *Store) ensureDatabase(ctx context.Context, name string, mustExist bool) error {
	var exists bool
	if err := s.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("check metadata database: %w", err)
	}
	if exists {
		return nil
	}
	if mustExist {
		return fmt.Errorf("metadata database %q does not exist: check --metadata-db, or start bitd once to create it", name)
	}
	_, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P04" || pe.Code == "23505") { // created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("create metadata database %q: %w", name, err)
	}
	// Platform roles log in with passwords a tenant can change (ALTER ROLE
	// CURRENT_USER PASSWORD): keep them out of the metadata database.
	if _, err := s.admin.Exec(ctx, "REVOKE ALL ON DATABASE "+pgx.Identifier{name}.Sanitize()+" FROM PUBLIC"); err != nil {
		return fmt.Errorf("restrict metadata database %q: %w", name, err)
	}
	return nil
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int32
	err := s.DB.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return int(v), err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// shouldPing makes a pool ping a connection before handing it out when it has
// been idle for over a second or its socket is already closed (a PostgreSQL
// restart): a dead one is replaced instead of failing a request.
func shouldPing(_ context.Context, p pgxpool.ShouldPingParams) bool {
	return p.IdleDuration > time.Second || pgalive.Broken(p.Conn.PgConn().Conn())
}
