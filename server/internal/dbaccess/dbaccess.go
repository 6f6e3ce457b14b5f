// Package dbaccess is the contract between bitd's HTTP handlers (queries,
// import/export jobs) and whatever resolves "account/db" for the caller: which
// real PostgreSQL database it is, which role the caller's permission maps to,
// and a pool of connections logged in as that role. PostgreSQL enforces what
// that role may do; handlers never inspect SQL to decide permissions.
package dbaccess

import (
	"context"

	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Permission is the caller's permission on a database (wire-contract names).
type Permission string

const (
	Owner  Permission = "OWNER"
	Admin  Permission = "ADMIN"
	Writer Permission = "WRITER"
	Reader Permission = "READER"
)

// Target is a resolved database for one caller.
type Target struct {
	DatabaseID string     // platform id
	FullName   string     // "account/db" as stored (case preserved)
	PGDatabase string     // the real PostgreSQL database name
	Permission Permission // the caller's permission
	PGRole     string     // the login role that Permission maps to
	Pool       *pgxpool.Pool
	Principal  *authn.Principal
}

// Resolver finds a database by its full name for the principal in ctx.
// Errors are *apierr.Error values: 401 without a principal (unless the
// database is public), 404 when the database does not exist or is not
// visible to the caller (never 403, so names don't leak), 400 for a
// malformed name.
type Resolver interface {
	Resolve(ctx context.Context, fullName string) (*Target, error)
}
