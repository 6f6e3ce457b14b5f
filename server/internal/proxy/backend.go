package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// errRoleTampered means the session's login role has per-role settings
// (ALTER ROLE … SET, which SQL run as the role may do to itself): they
// would apply to every session of the role, other tenants' included.
var errRoleTampered = errors.New("the login role has per-role settings (ALTER ROLE … SET)")

// roleSettingsCheck reports whether the session's login role has per-role
// settings in any database; bitd never sets any. It runs with no statement
// timeout (a tampered statement_timeout must not fail the check itself) and
// leaves no trace in the session: SET LOCAL ends with the transaction.
const roleSettingsCheck = `BEGIN; SET LOCAL statement_timeout = 0; SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s
	JOIN pg_catalog.pg_roles r ON r.oid = s.setrole WHERE r.rolname = current_user); COMMIT`

// checkRoleSettings runs roleSettingsCheck on a new backend connection. It
// returns errRoleTampered when the role has settings, or when a tampered
// statement_timeout cancelled the check.
func checkRoleSettings(ctx context.Context, pc *pgconn.PgConn) error {
	res, err := pc.Exec(ctx, roleSettingsCheck).ReadAll()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "57014" {
		return errRoleTampered
	}
	if err != nil {
		return fmt.Errorf("check the login role's settings: %w", err)
	}
	if len(res) != 4 || len(res[2].Rows) != 1 || len(res[2].Rows[0]) != 1 || pc.TxStatus() != 'I' {
		return errors.New("check the login role's settings: unexpected answer")
	}
	if string(res[2].Rows[0][0]) != "f" {
		return errRoleTampered
	}
	return nil
}

// openBackend connects to the backend as t's role. When the backend refuses
// the login (the role's password was changed by SQL run as it) or the role
// has per-role settings, and the Authorizer is a RoleRepairer, the role is
// reset and the connection tried once more: the client never gets a session
// with a tampered role.
func (s *Server) openBackend(ctx context.Context, t *WireTarget, dbName string, params map[string]string) (*pgconn.HijackedConn, error) {
	hc, err := connectBackend(ctx, t, params)
	if err == nil || (!loginRefused(err) && !errors.Is(err, errRoleTampered)) {
		return hc, err
	}
	rr, ok := s.auth.(RoleRepairer)
	if !ok {
		return nil, err
	}
	s.log.Warn("proxy: the login role was changed by SQL run as it; resetting it", "database", dbName, "role", t.PGRole, "err", err)
	if rerr := rr.RepairRole(ctx, t); rerr != nil {
		s.log.Error("proxy: resetting the role failed", "database", dbName, "role", t.PGRole, "err", rerr)
		return nil, err
	}
	return connectBackend(ctx, t, params)
}

// backendParams returns the start-up parameters of the backend connection:
// the client's, and for reader sessions lock_timeout and
// idle_in_transaction_session_timeout (replacing the client's, whatever
// their spelling).
func (s *Server) backendParams(t *WireTarget, client map[string]string) map[string]string {
	if !t.Reader || s.cfg.ReaderLockTimeout < 0 {
		return client
	}
	ours := map[string]string{"lock_timeout": millis(s.cfg.ReaderLockTimeout)}
	if d := s.cfg.ReaderIdleInTransaction; d > 0 {
		ours["idle_in_transaction_session_timeout"] = millis(d)
	}
	p := make(map[string]string, len(client)+len(ours))
	maps.Copy(p, client)
	for k := range p {
		for o := range ours {
			if strings.EqualFold(k, o) {
				delete(p, k)
			}
		}
	}
	maps.Copy(p, ours)
	return p
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
