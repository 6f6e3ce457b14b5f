package access

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Cache bounds used when Config leaves them zero.
const (
	DefaultMaxEntries = 10_000
	DefaultMaxAge     = 60 * time.Second
)

// PoolProvider hands out a pool logged in as pgRole on pgDatabase (the
// pgpool.Manager satisfies it).
type PoolProvider interface {
	Pool(ctx context.Context, pgDatabase, pgRole string) (*pgxpool.Pool, error)
}

// placedPools is a PoolProvider that places databases on several clusters
// (pgpool.Manager).
type placedPools interface {
	PoolOn(ctx context.Context, cluster, pgDatabase, pgRole string) (*pgxpool.Pool, error)
}

// Config configures an Access.
type Config struct {
	Store *store.Store
	// Pools hands out the pools Resolve returns; nil makes Resolve answer
	// 503 after the access checks.
	Pools PoolProvider
	// Logger receives listener warnings (nil: slog.Default()).
	Logger *slog.Logger
	// MaxEntries bounds the cache (principals and resolutions together);
	// zero means DefaultMaxEntries, a negative value disables the cache.
	MaxEntries int
	// MaxAge bounds how long an answer is served from memory; zero means
	// DefaultMaxAge.
	MaxAge time.Duration
}

// Access is the access layer of one bitd replica. Create it with New, call
// Start to begin listening for changes (the cache stays off until the
// first LISTEN succeeds) and Stop when done. It is safe for concurrent use.
type Access struct {
	st         *store.Store
	pools      PoolProvider
	log        *slog.Logger
	cache      *cache
	enabled    bool
	cancel     context.CancelFunc
	listenDone chan struct{}
	test       testSignals
	// notified are the subscribers of announced changes (OnNotify).
	notified []func(tags []string)
}

// testSignals are the listener's knobs and counters for tests.
type testSignals struct {
	// idleCheck is listenIdleCheck (tests shorten it).
	idleCheck time.Duration
	// checks counts the listener's idle checks (tests wait on it).
	checks atomic.Int64
}

// New returns an Access over c.Store. It subscribes to the store's own
// access changes, so this replica drops what it changed before the
// changing call returns.
func New(c Config) *Access {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	a := &Access{st: c.Store, pools: c.Pools, log: c.Logger, cache: newCache(max(c.MaxEntries, 1), c.MaxAge),
		enabled: c.MaxEntries > 0}
	a.test.idleCheck = listenIdleCheck
	c.Store.OnAccessChange(a.cache.invalidate)
	return a
}

// CacheStats reads the cache's size and counters (for metrics).
func (a *Access) CacheStats() CacheStats { return a.cache.stats() }

// Start begins listening for access changes on a dedicated metadata
// connection, until Stop. Without Start (or with the cache disabled) every
// lookup goes to the store.
func (a *Access) Start() {
	if !a.enabled || a.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.listenDone = cancel, make(chan struct{})
	go a.listen(ctx, listenerConfig(a.st))
}

// OnNotify registers f to run, on the listener's goroutine, with the tags
// of every access change announced on store.AccessChannel, by any process
// including this one. Register before Start; f must not block.
func (a *Access) OnNotify(f func(tags []string)) { a.notified = append(a.notified, f) }

// Stop ends the listener and waits for it.
func (a *Access) Stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.listenDone
}

// Store is the metadata store under the access layer.
func (a *Access) Store() *store.Store { return a.st }

// principalEntry is a cached principal.
type principalEntry struct{ p authn.Principal }

// Principal returns the caller an API key, service-account key or access
// token belongs to. Unknown, revoked and expired credentials are a 401
// that never echoes the credential.
func (a *Access) Principal(ctx context.Context, cred string) (*authn.Principal, error) {
	p, err := a.lookupPrincipal(ctx, cred)
	if errors.Is(err, store.ErrNotFound) {
		if secret.IsAccessToken(cred) {
			return nil, apierr.Unauthorized("the access token is invalid, expired or revoked: log in again (POST /auth/v1/login)")
		}
		return nil, apierr.Unauthorized("the API key is invalid or revoked: create a new key (bit key create, or bitd admin key create USER)")
	}
	return p, err
}

// lookupPrincipal finds the principal of an API key or access token, from
// the cache or the store; store.ErrNotFound when it is unknown, revoked or
// expired (never cached).
func (a *Access) lookupPrincipal(ctx context.Context, cred string) (p *authn.Principal, err error) {
	ctx, sp := tracing.Start(ctx, "access.principal") // nil unless traced
	key := "p:" + secret.HashCredential(cred)
	if v, ok := a.cache.get(key); ok {
		cp := v.(*principalEntry).p
		endLookup(sp, true, nil)
		return &cp, nil
	}
	if sp != nil {
		defer func() { endLookup(sp, false, err) }()
	}
	gen, _ := a.cache.generation()
	var expires time.Time
	if secret.IsAccessToken(cred) {
		p, expires, err = a.st.AccessTokenPrincipal(ctx, cred)
	} else {
		p, err = a.st.PrincipalByAPIKey(ctx, cred)
	}
	if err != nil {
		return nil, err
	}
	a.cache.put(gen, key, &principalEntry{p: *p}, expires, principalTags(p)...)
	return p, nil
}

// LookupPrincipal is Principal for callers that answer in their own terms
// (the wire proxy): store.ErrNotFound for an unknown, revoked or expired
// credential.
func (a *Access) LookupPrincipal(ctx context.Context, cred string) (*authn.Principal, error) {
	return a.lookupPrincipal(ctx, cred)
}

// DatabaseFor finds the live database account/name and p's role on it (the
// cached answer Resolve uses); store.ErrNotFound when it does not exist or p
// may not use it.
func (a *Access) DatabaseFor(ctx context.Context, p *authn.Principal, account, name string) (*store.Database, error) {
	return a.database(ctx, p, account, name)
}

// Invalidate drops what this replica cached under tags (store.CredTag …),
// for a caller that learned from the store that an answer went stale.
func (a *Access) Invalidate(tags []string) { a.cache.invalidate(tags) }

// principalTags are the invalidation tags of anything cached for p.
func principalTags(p *authn.Principal) []string {
	t := []string{store.CredTag(p.CredentialID), store.AccountTag(p.AccountID)}
	if p.UserID != "" {
		t = append(t, store.UserTag(p.UserID))
	}
	if p.ServiceAccountID != "" {
		t = append(t, store.SATag(p.ServiceAccountID))
	}
	return t
}

// database finds the live database account/name and p's role on it, from
// the cache or the store; store.ErrNotFound when it does not exist or p
// may not use it (never cached).
func (a *Access) database(ctx context.Context, p *authn.Principal, account, name string) (_ *store.Database, err error) {
	ctx, sp := tracing.Start(ctx, "access.database") // nil unless traced
	key := "d:" + p.CredentialID + "\x00" + strings.ToLower(account) + "\x00" + strings.ToLower(name)
	if v, ok := a.cache.get(key); ok {
		d := *v.(*store.Database)
		endLookup(sp, true, nil)
		return &d, nil
	}
	if sp != nil {
		defer func() { endLookup(sp, false, err) }()
	}
	gen, _ := a.cache.generation()
	d, err := a.st.DatabaseFor(ctx, p, account, name)
	if err != nil {
		return nil, err
	}
	cp := *d
	tags := append(principalTags(p), store.DBTag(d.ID), store.AccountTag(d.AccountID))
	a.cache.put(gen, key, &cp, time.Time{}, tags...)
	return d, nil
}

// endLookup ends a lookup's span (nil: not traced) with whether the
// cache answered; a credential or database that does not exist is an
// answer, not a failure of the lookup.
func endLookup(sp trace.Span, hit bool, err error) {
	if sp == nil {
		return
	}
	sp.SetAttributes(attribute.Bool("bitkit.cache.hit", hit))
	if errors.Is(err, store.ErrNotFound) {
		sp.SetAttributes(attribute.Bool("bitkit.found", false))
		err = nil
	}
	tracing.End(sp, err)
}

// NotFoundDB is the 404 for a database that does not exist or that the
// caller may not see (the same answer, so names do not leak).
func NotFoundDB(account, db string) error {
	return apierr.NotFound("database %s/%s not found, or you have no access to it", account, db)
}

var _ dbaccess.Resolver = (*Access)(nil)

// Resolve finds fullName ("account/db", or "db" in the caller's default
// account) for the principal in ctx and returns a pool logged in as the
// role the caller's permission maps to. Callers must be authenticated:
// anonymous requests get 401 even for public databases (public means
// readable by every signed-in caller).
func (a *Access) Resolve(ctx context.Context, fullName string) (*dbaccess.Target, error) {
	p := authn.From(ctx)
	if p == nil {
		return nil, apierr.Unauthorized("authentication required: send \"Authorization: Bearer <API key or access token>\"")
	}
	if fullName == "" {
		e := apierr.BadRequest("missing_field", "the field %q is required", "database_name")
		e.Field = "database_name"
		return nil, e
	}
	account, db, err := SplitFullName(fullName, p.AccountName)
	if err != nil {
		return nil, err
	}
	d, err := a.database(ctx, p, account, db)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFoundDB(account, db)
	}
	if err != nil {
		return nil, err
	}
	t := &dbaccess.Target{DatabaseID: d.ID, FullName: d.FullName(), PGDatabase: d.PGName,
		Permission: dbaccess.Permission(d.Role), PGRole: d.PGRole(), Principal: p}
	if a.pools == nil {
		return nil, apierr.New(http.StatusServiceUnavailable, "unavailable", "this bitd has no connection pools configured")
	}
	if pp, ok := a.pools.(placedPools); ok {
		// Several clusters: the pool on the cluster the (cached, NOTIFY-
		// invalidated) metadata places the database on.
		t.Pool, err = pp.PoolOn(ctx, d.Placement, t.PGDatabase, t.PGRole)
	} else {
		t.Pool, err = a.pools.Pool(ctx, t.PGDatabase, t.PGRole)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Usage records rows queried per database (it satisfies the query
// package's UsageRecorder). Failures are logged, never returned.
type Usage struct {
	Store *store.Store
	Log   func(msg string, args ...any)
}

// AddRowsQueried adds rows to the database's current monthly usage.
func (u *Usage) AddRowsQueried(ctx context.Context, databaseID string, rows int64) {
	if rows <= 0 {
		return
	}
	if err := u.Store.AddRowsQueried(context.WithoutCancel(ctx), databaseID, rows); err != nil && u.Log != nil {
		u.Log("recording usage failed", "database_id", databaseID, "err", err)
	}
}
