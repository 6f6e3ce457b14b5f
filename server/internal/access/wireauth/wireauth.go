// Package wireauth is the wire proxy's authorizer over the access layer: it
// turns a PostgreSQL client's password (an API key or access token) and
// database name ("account/db") into the backend the proxy relays to. It sits
// apart from package access so that the HTTP surfaces, which import access,
// do not depend on the wire proxy.
package wireauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
)

// Authorizer implements proxy.Authorizer over the access layer: the
// password is an API key or access token, the database "account/db", and
// the backend role is the one the caller's permission maps to, with its
// password derived from the server secret.
type Authorizer struct {
	Access      *access.Access
	Secret      []byte
	BackendAddr string // host:port of the cluster holding platform databases
	// ClusterAddr, when set, returns where tenant roles connect on a
	// cluster other than "default" (pgpool.Manager.TenantAddrOf); the
	// databases placed there are relayed to it instead of BackendAddr.
	ClusterAddr func(ctx context.Context, cluster string) (string, error)
	// Repair resets a login role after the server refused bitd's login as
	// it (pgpool.Manager.RepairRole). nil disables RepairRole.
	Repair func(ctx context.Context, pgDatabase, pgRole string) error
}

var (
	_ proxy.Authorizer   = (*Authorizer)(nil)
	_ proxy.RoleRepairer = (*Authorizer)(nil)
)

// RepairRole resets t's login role with Repair (an error when Repair is nil).
func (a *Authorizer) RepairRole(ctx context.Context, t *proxy.WireTarget) error {
	if a.Repair == nil {
		return errors.New("no role repair configured")
	}
	return a.Repair(ctx, t.PGDatabase, t.PGRole)
}

// BackendAddr returns the host:port the wire proxy connects to: override
// when it is host:port or /socket/dir:port, override's Unix-socket directory
// with the port of connString when override is a bare absolute path, else
// connString's host and port. The host of the result is a directory for a
// Unix socket. bitd serve passes pgaddr.Tenant's answer as override, so
// the HTTP pools and the wire proxy reach tenant roles the same way.
func BackendAddr(connString, override string) (string, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return "", errors.New("invalid database URL")
	}
	if override == "" {
		return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), nil
	}
	a, err := pgaddr.Parse(override, cfg.Port)
	if err != nil {
		return "", fmt.Errorf("--pg-backend %w", err)
	}
	return a.String(), nil
}

// AuthorizeWire checks the credential and the caller's access to database.
func (a *Authorizer) AuthorizeWire(ctx context.Context, password, database string) (*proxy.WireTarget, error) {
	p, err := a.Access.LookupPrincipal(ctx, password)
	if errors.Is(err, store.ErrNotFound) {
		return nil, proxy.ErrBadPassword
	}
	if err != nil {
		return nil, err
	}
	account, db, ok := strings.Cut(database, "/")
	if !ok || access.ValidateAccountName(account) != nil || access.ValidateDatabaseName(db) != nil {
		return nil, fmt.Errorf("%w: use account/db", proxy.ErrUnknownDatabase)
	}
	d, err := a.Access.DatabaseFor(ctx, p, account, db)
	if errors.Is(err, store.ErrNotFound) {
		return nil, proxy.ErrUnknownDatabase
	}
	if err != nil {
		return nil, err
	}
	role := d.PGRole()
	backend, cluster := a.BackendAddr, ""
	if a.ClusterAddr != nil && d.Placement != "" && d.Placement != store.DefaultCluster {
		if backend, err = a.ClusterAddr(ctx, d.Placement); err != nil {
			return nil, err
		}
		cluster = d.Placement
	}
	return &proxy.WireTarget{DatabaseID: d.ID, CredentialID: p.CredentialID, PGDatabase: d.PGName,
		PGRole: role, PGPassword: secret.RolePassword(a.Secret, role), BackendAddr: backend,
		Reader: store.ReadOnlyRole(role), Cluster: cluster}, nil
}

// StillAuthorized re-checks the grants of open wire sessions in one
// metadata query: a grant holds while its credential is live and still maps
// to the database with the same login role.
func (a *Authorizer) StillAuthorized(ctx context.Context, grants []proxy.Grant) ([]proxy.GrantStatus, error) {
	in := make([]store.Grant, len(grants))
	for i, g := range grants {
		in[i] = store.Grant{CredentialID: g.CredentialID, DatabaseID: g.DatabaseID}
	}
	states, err := a.Access.Store().Grants(ctx, in)
	if err != nil {
		return nil, err
	}
	out := make([]proxy.GrantStatus, len(grants))
	var stale []string
	for i, st := range states {
		switch {
		case !st.CredentialValid:
			out[i] = proxy.GrantCredentialInvalid
		case st.PGRole() == "" || st.PGRole() != grants[i].PGRole: // AuthorizeWire's role (Database.PGRole)
			out[i] = proxy.GrantWithdrawn
		default:
			continue
		}
		stale = append(stale, store.CredTag(grants[i].CredentialID))
	}
	if len(stale) > 0 {
		// The store's fresh answer disagrees with what the session was
		// granted: drop what this replica cached for those credentials,
		// in case the change was made without its notification.
		a.Access.Invalidate(stale)
	}
	return out, nil
}
