package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/jackc/pgx/v5/pgconn"
)

// A job runs long after the request that created it, so it checks again,
// right before it writes (an import, before its load; an export, before its
// query), that the caller could still create it: the credential that
// created it is live, and the caller still has at least the permission the
// job was created with on the same database. Revoking every key of a
// service account, making a database private, removing a collaborator or
// lowering a role thus also stops the jobs still queued for them.

// recheck fails with a user error (credential_revoked, permission_denied)
// when the job's caller lost what admitted the job; other errors (the
// metadata database unreachable) deserve a retry.
func (s *Service) recheck(ctx context.Context, rec *record) error {
	if s.cfg.Credentials != nil && rec.CredentialID != nil && *rec.CredentialID != "" {
		if !s.cfg.Credentials.CredentialValid(ctx, *rec.CredentialID) {
			if err := ctx.Err(); err != nil {
				return err
			}
			return &userError{Type: "credential_revoked", Message: "the API key or access token that created this job " +
				"was revoked or has expired, so the job did not run: create the job again with a live key"}
		}
	}
	p, ok := jobPrincipal(rec)
	if !ok {
		return fmt.Errorf("job %s: unknown owner kind", rec.ID)
	}
	t, err := s.resolver.Resolve(authn.With(ctx, p), rec.DatabaseName)
	var ae *apierr.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		return &userError{Type: "permission_denied", Message: fmt.Sprintf("the job's caller no longer has access to database %s "+
			"(it was made private, deleted, or the caller's permission was removed), so the job did not run", rec.DatabaseName)}
	}
	if err != nil {
		return fmt.Errorf("re-check permission: %w", err)
	}
	if t.DatabaseID != rec.DatabaseID {
		return &userError{Type: "permission_denied", Message: fmt.Sprintf("database %s was deleted and created again "+
			"since the job was created, so the job did not run: create the job again", rec.DatabaseName)}
	}
	if roleRank(t.PGRole) < roleRank(rec.PGRole) {
		return &userError{Type: "permission_denied", Message: fmt.Sprintf("the job's caller now has permission %s on database %s, "+
			"less than when the job was created, so the job did not run", t.Permission, rec.DatabaseName)}
	}
	return nil
}

// jobPrincipal is the caller recorded in the job row (OwnerID "user:<id>"
// or "sa:<id>"), enough for the resolver to find its permission.
func jobPrincipal(rec *record) (*authn.Principal, bool) {
	p := &authn.Principal{}
	if rec.CredentialID != nil {
		p.CredentialID = *rec.CredentialID
	}
	if rec.AccountID != nil {
		p.AccountID = *rec.AccountID
	}
	switch kind, id, _ := strings.Cut(rec.OwnerID, ":"); kind {
	case "user":
		p.Kind, p.UserID = authn.KindUser, id
	case "sa":
		p.Kind, p.ServiceAccountID = authn.KindServiceAccount, id
	default:
		return nil, false
	}
	return p, true
}

// roleRank orders a database's login roles by what they may do.
func roleRank(role string) int {
	switch {
	case strings.HasSuffix(role, "_owner"):
		return 3
	case strings.HasSuffix(role, "_writer"):
		return 2
	case strings.HasSuffix(role, "_reader"):
		return 1
	}
	return 0
}

// errJobTimeout is the cause of a job's own deadline (Config.StatementTimeout).
var errJobTimeout = errors.New("job statement timeout")

// statementTimeoutGrace lets PostgreSQL's statement_timeout, which gives
// the cleaner error, fire before bitd's own deadline does.
const statementTimeoutGrace = 5 * time.Second

// withStatementDeadline bounds the SQL work of a job: bitd cancels it (and
// pgx cancels the backend's query) a little after Config.StatementTimeout,
// whatever the SQL set.
func (s *Service) withStatementDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.cfg.StatementTimeout+statementTimeoutGrace, errJobTimeout)
}

// setStatementTimeout sets the job transaction's statement_timeout.
func (s *Service) setStatementTimeout(ctx context.Context, exec func(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)) error {
	_, err := exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", s.cfg.StatementTimeout.Milliseconds()))
	return err
}

// timeoutError turns err into the statement_timeout user error when the
// job's SQL ran past Config.StatementTimeout (PostgreSQL's own timeout, or
// bitd's deadline in ctx); otherwise it returns err unchanged.
func (s *Service) timeoutError(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	timedOut := errors.Is(context.Cause(ctx), errJobTimeout) ||
		(errors.As(err, &pe) && pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout"))
	if !timedOut {
		return err
	}
	return &userError{Type: "statement_timeout", Message: fmt.Sprintf("%s ran longer than the job statement timeout (%v) and was cancelled: "+
		"make it faster or smaller (for an export, select fewer rows or columns), or ask the operator to raise --job-statement-timeout",
		what, s.cfg.StatementTimeout), Details: map[string]any{"timeout_seconds": s.cfg.StatementTimeout.Seconds()}}
}
