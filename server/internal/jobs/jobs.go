// Package jobs runs bitd's import and export jobs: durable river jobs in the
// metadata database, files in a blob store, and the HTTP handlers of the job
// routes.
//
// What bitd must do (in this order, once at start-up):
//
//	if err := jobs.Migrate(ctx, store.DB); err != nil { ... }        // river + bitkit_jobs tables
//	bucket, err := blob.Open(ctx, cfg.BlobURL, cfg.DataDir)          // DATA/blobs by default
//	svc, err := jobs.New(ctx, jobs.Config{PublicURL: "http://127.0.0.1:8080", Secret: serverSecret, ...},
//		store.DB, pgpoolManager, resolver, bucket, logger)          // starts the workers
//	for _, rt := range svc.Routes() {
//		h := rt.Handler
//		if !rt.Public { h = authMiddleware(h) }                     // sets authn.Principal in ctx
//		mux.Handle(rt.Pattern, h)
//	}
//	defer svc.Stop(shutdownCtx)                                      // before closing pools and bucket
//
// Routes (each pattern with and without the trailing slash):
//
//	POST /v2beta/db/{account}/{db}/import/   multipart upload → Job (202)
//	GET  /v2beta/import/{id}                 Job
//	POST /v2beta/db/{account}/{db}/export/   JSON → Job (202)
//	GET  /v2beta/export/{id}                 Job + export_format, file_name, download_url, file_expired
//	GET  /v2beta/files/{token}               the export file (Public: the signed token is the credential)
//
// Durability: a job is a bitkit_jobs row plus a river job inserted in the
// same metadata transaction. An import loads every table in ONE transaction
// on the target database, as the caller's role, guarded by a transaction
// advisory lock keyed by the job id. Before that transaction commits, its
// transaction id (pg_current_xact_id) is recorded in the job row; a retry
// that finds a recorded id asks the target database (pg_xact_status) whether
// it committed, and marks the job DONE without loading again when it did. So
// a bitd killed at any point finishes the job after a restart (river
// rescues jobs stuck running longer than Config.RescueAfter) with every row
// loaded exactly once. A plain CSV upload is loaded while it streams in
// (fastpath.go) and recorded the same way, with its transaction id, before
// it commits.
//
// Retention: a sweep in every Service (retention.go) deletes export files
// and the uploads of FAILED imports Config.ExportRetention after their job
// finished, and records it in the job row (file_deleted_at).
//
// A Service is safe for concurrent use.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/blob"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Service. Zero values take the defaults named.
type Config struct {
	// CheckStorage, when set, is asked before an import loads whether
	// database databaseID can take incoming more bytes; an error with
	// ErrorType fails the job with that type (storage quotas:
	// storage_limit_exceeded) before anything is written. AfterWrite, when
	// set, is told once an import committed (to measure the database now).
	CheckStorage func(ctx context.Context, databaseID string, incoming int64) error
	AfterWrite   func(ctx context.Context, databaseID string)
	// PublicURL is the server's external base URL (no trailing slash), used
	// for the absolute status_url and download_url. Required.
	PublicURL string
	// Secret is the server secret; download tokens are signed with a key
	// derived from it. Required (at least 32 bytes).
	Secret []byte
	// AllowPrivateURLs lets file_url reach loopback, private and link-local
	// addresses (dev mode only).
	AllowPrivateURLs bool
	// MaxUploadBytes caps an uploaded file (default 5 GiB).
	MaxUploadBytes int64
	// MaxURLFetchBytes caps a file fetched from file_url (default 5 GiB).
	MaxURLFetchBytes int64
	// URLFetchTimeout caps a file_url fetch (default 10 minutes).
	URLFetchTimeout time.Duration
	// DownloadURLTTL is how long a download_url stays valid after the job
	// is read (default 1 hour).
	DownloadURLTTL time.Duration
	// RescueAfter is how long a job may stay running before river hands it
	// to another worker (default 1 hour; tests and dev use far less). The
	// advisory lock and the recorded transaction id keep a rescued job from
	// loading twice.
	RescueAfter time.Duration
	// Workers is the number of jobs run at once by this process (default
	// 8). Each running job holds one connection to its target database and
	// one to the metadata database (its fairness slot, fair.go).
	Workers int
	// MaxRunningPerAccount caps the jobs of one account (the caller's
	// account: a user's own, a service account's owner) running at once
	// across every bitd sharing the metadata database (default 2). A job of
	// an account at its cap waits in the queue (river snooze: no attempt
	// is counted) until one of that account's jobs ends.
	MaxRunningPerAccount int
	// StatementTimeout bounds the SQL work of a job (default 30 minutes):
	// an export's query and the writing of its file, an import's load. It
	// is set as the statement_timeout of the job's transaction and also
	// enforced by bitd, which cancels the backend when it passes (the SQL
	// cannot lift it). A job past it FAILS with error_type
	// "statement_timeout".
	StatementTimeout time.Duration
	// Credentials, when set, re-checks before a job writes (import) or
	// runs its query (export) that the API key or access token that created
	// the job is still live; a revoked one FAILS the job with error_type
	// "credential_revoked". bitd always sets it; nil skips the check.
	Credentials CredentialChecker
	// MaxAttempts is how many times a job is tried (default 5) before it is
	// FAILED with error_type "internal"; errors in the user's data fail at once.
	MaxAttempts int
	// Queue is the river queue name (default "bitkit").
	Queue string
	// TempDir holds the local copy of a file while it is imported (default
	// os.TempDir()).
	TempDir string
	// ExportRetention is how long an export's file is kept in the blob store
	// after the export finished (default 168h, 7 days); the retention sweep
	// then deletes it, and the upload left by a FAILED import, and records
	// that in the job row (retention.go).
	ExportRetention time.Duration
	// Metrics records the jobs this process finishes; nil records nothing.
	Metrics *metrics.Metrics
	// Tracer, when set, traces each job run (a "job.import" or
	// "job.export" span linked to the traced request that created the
	// job, worker.go); nil traces nothing.
	Tracer trace.Tracer
	// SweepInterval is how often the retention sweep runs (default 10
	// minutes; the first sweep runs one minute after New, or after
	// SweepInterval when that is shorter). Negative turns the periodic
	// sweep off (tests that run it themselves).
	SweepInterval time.Duration
}

func (c *Config) defaults() error {
	if c.PublicURL == "" {
		return errors.New("jobs: Config.PublicURL is required (the server's external base URL)")
	}
	if len(c.Secret) < 32 {
		return errors.New("jobs: Config.Secret must hold at least 32 bytes")
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 5 << 30
	}
	if c.MaxURLFetchBytes <= 0 {
		c.MaxURLFetchBytes = 5 << 30
	}
	if c.URLFetchTimeout <= 0 {
		c.URLFetchTimeout = 10 * time.Minute
	}
	if c.DownloadURLTTL <= 0 {
		c.DownloadURLTTL = time.Hour
	}
	if c.RescueAfter <= 0 {
		c.RescueAfter = time.Hour
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxRunningPerAccount <= 0 {
		c.MaxRunningPerAccount = DefaultMaxRunningPerAccount
	}
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.Queue == "" {
		c.Queue = "bitkit"
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.ExportRetention <= 0 {
		c.ExportRetention = DefaultExportRetention
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 10 * time.Minute
	}
	return nil
}

// Defaults of Config.
const (
	DefaultWorkers              = 8
	DefaultMaxRunningPerAccount = 2
	DefaultStatementTimeout     = 30 * time.Minute
)

// CredentialChecker reports whether the API key or access token with this
// id is still live (store.Store implements it).
type CredentialChecker interface {
	CredentialValid(ctx context.Context, credentialID string) bool
}

// PoolSource hands out pools logged in as a given role on a given real
// PostgreSQL database (pgpool.Manager implements it). Jobs run after the
// request that created them, maybe after a restart, so they find their pool
// again by name.
type PoolSource interface {
	Pool(ctx context.Context, pgDatabase, pgRole string) (*pgxpool.Pool, error)
}

// Route is one HTTP route of the jobs API.
type Route struct {
	// Pattern is a net/http ServeMux pattern ("METHOD /path").
	Pattern string
	// Handler serves it.
	Handler http.Handler
	// Public routes authenticate themselves (the download token); every
	// other route needs the auth middleware that puts the principal in the
	// request context.
	Public bool
	// Upload routes stream a request body they limit themselves (multipart
	// uploads): no fixed body limit, and a stall deadline instead of a
	// fixed read timeout.
	Upload bool
	// SlashOf, when set, says this route is the trailing-slash form of the
	// route with that pattern (a router that adds slash forms itself skips
	// it).
	SlashOf string
}

// Service runs import and export jobs and serves their routes.
type Service struct {
	cfg  Config
	meta *pgxpool.Pool
	// slots holds the metadata connections that keep running jobs' fairness
	// slots (session advisory locks, fair.go).
	slots    *pgxpool.Pool
	pools    PoolSource
	resolver dbaccess.Resolver
	bucket   *blob.Bucket
	log      *slog.Logger
	river    *river.Client[pgx.Tx]
	key      []byte
	stopping atomic.Bool
	// test holds the hooks tests set (testsignals.go); nil in production.
	test atomic.Pointer[testSignals]
	// fastSlots bounds the fast-path attempts running at once.
	fastSlots chan struct{}
	// fastRecover is when a fast-path job's river run is scheduled
	// (fastRecoverAfter; tests shorten it).
	fastRecover time.Duration
	now         func() time.Time
	// sweepStop ends the retention sweep loop; sweepDone is closed when it
	// has returned.
	sweepStop context.CancelFunc
	sweepDone chan struct{}
}

// New starts a Service: its river client works jobs from the metadata
// database until Stop. Migrate must have run. The caller keeps ownership of
// metadata, pools, resolver and bucket and closes them after Stop. ctx
// bounds the start only: its end does not stop the Service (only Stop
// hands running jobs back to the queue; river would take the end of its
// start context for a hard stop and cancel them, and a job cancelled
// before Stop counts as failed).
func New(ctx context.Context, cfg Config, metadata *pgxpool.Pool, pools PoolSource, resolver dbaccess.Resolver, bucket *blob.Bucket, logger *slog.Logger) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Service{cfg: cfg, meta: metadata, pools: pools, resolver: resolver, bucket: bucket, log: logger,
		key: downloadKey(cfg.Secret), now: time.Now, fastSlots: make(chan struct{}, cfg.Workers),
		fastRecover: fastRecoverAfter}
	scfg := metadata.Config().Copy()
	scfg.MaxConns = int32(cfg.Workers) + 1
	scfg.MinConns = 0
	scfg.MaxConnIdleTime = 30 * time.Second
	slots, err := pgxpool.NewWithConfig(ctx, scfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: slot pool: %w", err)
	}
	s.slots = slots
	workers := river.NewWorkers()
	river.AddWorker(workers, &importWorker{s: s})
	river.AddWorker(workers, &exportWorker{s: s})
	client, err := river.NewClient(riverpgxv5.New(metadata), &river.Config{
		Logger:  logger,
		Queues:  map[string]river.QueueConfig{cfg.Queue: {MaxWorkers: cfg.Workers}},
		Workers: workers,
		// River rescues a running job only once it is past its timeout, so the
		// timeout is RescueAfter; workers ignore the deadline it puts on their
		// context (imports take as long as they take) and stop only when the
		// context is cancelled (Stop).
		JobTimeout:           cfg.RescueAfter,
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          cfg.MaxAttempts,
	})
	if err != nil {
		slots.Close()
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	s.river = client
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		slots.Close()
		return nil, fmt.Errorf("jobs: start river: %w", err)
	}
	s.startSweeper()
	return s, nil
}

// Stop stops taking jobs and waits for running ones until ctx ends; then it
// cancels them (they are picked up again, from the start, by the next
// Service that runs). Safe to call once.
func (s *Service) Stop(ctx context.Context) error {
	s.stopping.Store(true)
	s.stopSweeper()
	defer s.slots.Close()
	err := s.river.Stop(ctx)
	if err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.river.StopAndCancel(cctx)
}

func (s *Service) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: s.cfg.Queue, MaxAttempts: s.cfg.MaxAttempts}
}

// Routes returns the job routes, each pattern without and with its trailing
// slash ("…/{$}", so that nothing below it matches).
func (s *Service) Routes() []Route {
	var out []Route
	add := func(pattern string, h errorHandler, public, upload bool) {
		out = append(out, Route{Pattern: pattern, Handler: h, Public: public, Upload: upload},
			Route{Pattern: pattern + "/{$}", Handler: h, Public: public, Upload: upload, SlashOf: pattern})
	}
	add("POST /v2beta/db/{account}/{db}/import", s.handleCreateImport, false, true)
	add("GET /v2beta/import/{id}", s.handleGetImport, false, false)
	add("POST /v2beta/db/{account}/{db}/export", s.handleCreateExport, false, false)
	add("GET /v2beta/export/{id}", s.handleGetExport, false, false)
	add("GET /v2beta/files/{token}", s.handleDownload, true, false)
	return out
}
