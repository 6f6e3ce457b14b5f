package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
)

// WireAuthorizer implements proxy.Authorizer over the metadata store: the
// password is an API key or access token, the database "account/db", and
// the backend role is the one the caller's permission maps to, with its
// password derived from the server secret.
type WireAuthorizer struct {
	Store       *store.Store
	Secret      []byte
	BackendAddr string // host:port of the cluster holding platform databases
	// Repair resets a login role after the server refused bitd's login as
	// it (pgpool.Manager.RepairRole). nil disables RepairRole.
	Repair func(ctx context.Context, pgDatabase, pgRole string) error
}

var (
	_ proxy.Authorizer   = (*WireAuthorizer)(nil)
	_ proxy.RoleRepairer = (*WireAuthorizer)(nil)
)

// RepairRole resets t's login role with Repair (an error when Repair is nil).
func (a *WireAuthorizer) RepairRole(ctx context.Context, t *proxy.WireTarget) error {
	if a.Repair == nil {
		return errors.New("no role repair configured")
	}
	return a.Repair(ctx, t.PGDatabase, t.PGRole)
}

// BackendAddr returns the host:port the wire proxy connects to: override
// when it is host:port, override's Unix-socket directory with the port of
// connString when override is an absolute path, else connString's host and
// port. The host of the result is a directory for a Unix socket.
func BackendAddr(connString, override string) (string, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return "", errors.New("invalid database URL")
	}
	port := strconv.Itoa(int(cfg.Port))
	switch {
	case override == "":
		return net.JoinHostPort(cfg.Host, port), nil
	case strings.HasPrefix(override, "/"):
		if fi, err := os.Stat(override); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("--pg-backend %s: not a directory (give PostgreSQL's unix_socket_directories entry, or host:port)", override)
		}
		return override + ":" + port, nil
	default:
		if _, _, err := net.SplitHostPort(override); err != nil {
			return "", fmt.Errorf("--pg-backend %q: want host:port or a Unix-socket directory", override)
		}
		return override, nil
	}
}

// AuthorizeWire checks the credential and the caller's access to database.
func (a *WireAuthorizer) AuthorizeWire(ctx context.Context, password, database string) (*proxy.WireTarget, error) {
	p, err := lookupPrincipal(ctx, a.Store, password)
	if errors.Is(err, store.ErrNotFound) {
		return nil, proxy.ErrBadPassword
	}
	if err != nil {
		return nil, err
	}
	account, db, ok := strings.Cut(database, "/")
	if !ok || ValidateAccountName(account) != nil || ValidateDatabaseName(db) != nil {
		return nil, fmt.Errorf("%w: use account/db", proxy.ErrUnknownDatabase)
	}
	d, err := a.Store.DatabaseFor(ctx, p, account, db)
	if errors.Is(err, store.ErrNotFound) {
		return nil, proxy.ErrUnknownDatabase
	}
	if err != nil {
		return nil, err
	}
	role := store.RoleFor(d.PGName, d.Role)
	return &proxy.WireTarget{DatabaseID: d.ID, CredentialID: p.CredentialID, PGDatabase: d.PGName,
		PGRole: role, PGPassword: secret.RolePassword(a.Secret, role), BackendAddr: a.BackendAddr}, nil
}

// CredentialValid reports whether the key or token is still live.
func (a *WireAuthorizer) CredentialValid(ctx context.Context, credentialID string) bool {
	return a.Store.CredentialValid(ctx, credentialID)
}
