package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// Resolver implements dbaccess.Resolver over the metadata store and a pool
// provider. Callers must be authenticated: anonymous requests get 401 even
// for public databases (public means readable by every signed-in caller).
type Resolver struct {
	Store *store.Store
	Pools PoolProvider
}

var _ dbaccess.Resolver = (*Resolver)(nil)

// Resolve finds fullName ("account/db", or "db" in the caller's default
// account) for the principal in ctx and returns a pool logged in as the role
// the caller's permission maps to.
func (rv *Resolver) Resolve(ctx context.Context, fullName string) (*dbaccess.Target, error) {
	p := authn.From(ctx)
	if p == nil {
		return nil, apierr.Unauthorized("authentication required: send \"Authorization: Bearer <API key or access token>\"")
	}
	if fullName == "" {
		return nil, missing("database_name")
	}
	account, db, err := SplitFullName(fullName, p.AccountName)
	if err != nil {
		return nil, err
	}
	d, err := rv.Store.DatabaseFor(ctx, p, account, db)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundDB(account, db)
	}
	if err != nil {
		return nil, err
	}
	t := &dbaccess.Target{DatabaseID: d.ID, FullName: d.FullName(), PGDatabase: d.PGName,
		Permission: dbaccess.Permission(d.Role), PGRole: store.RoleFor(d.PGName, d.Role), Principal: p}
	if rv.Pools == nil {
		return nil, apierr.New(http.StatusServiceUnavailable, "unavailable", "this bitd has no connection pools configured")
	}
	t.Pool, err = rv.Pools.Pool(ctx, t.PGDatabase, t.PGRole)
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
