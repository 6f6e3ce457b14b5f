package proxy

import (
	"context"
	"fmt"
	"time"
)

// Sessions follow permissions: every RevalidateEvery, and at once when the
// replica that changed a permission calls Recheck, the grants of open
// sessions are checked again and the sessions whose grant no longer holds
// are ended (a running query is cancelled).

// revalidateLoop re-checks every open session's grant every RevalidateEvery.
func (s *Server) revalidateLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RevalidateEvery)
	defer t.Stop()
	var failingSince time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		err := s.revalidate(nil)
		switch {
		case err == nil:
			failingSince = time.Time{}
		case failingSince.IsZero():
			failingSince = time.Now()
			s.log.Warn("proxy: re-checking the permissions of open sessions failed; retrying", "err", err)
		case time.Since(failingSince) > RevalidateGrace:
			s.log.Error("proxy: the permissions of open sessions could not be re-checked; ending them", "failing_for", time.Since(failingSince), "err", err)
			msg := fatal("57P01", "terminating connection because bitd could not re-check its permission; reconnect")
			for _, ss := range s.snapshot(func(ss *session) bool { return ss.target.CredentialID != "" }) {
				ss.terminate(msg, true)
			}
			failingSince = time.Now()
		}
	}
}

// Recheck checks the grants of the open sessions of the platform database
// databaseID now, and ends those that no longer hold: call it after
// changing who may use the database (privacy, collaborators, service-account
// database lists, roles) so that this replica's sessions follow at once;
// other replicas' sessions follow within RevalidateEvery. It returns the
// error of the Authorizer, if any (then nothing was ended).
func (s *Server) Recheck(ctx context.Context, databaseID string) error {
	return s.revalidateCtx(ctx, func(ss *session) bool { return ss.target.DatabaseID == databaseID })
}

// RecheckAll re-checks every open session now (after an access change
// this replica heard of but cannot map to sessions).
func (s *Server) RecheckAll(ctx context.Context) error { return s.revalidateCtx(ctx, nil) }

func (s *Server) revalidate(keep func(*session) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.revalidateCtx(ctx, keep)
}

// revalidateCtx checks the grants of the sessions keep selects (all when
// nil) with one StillAuthorized call, one Grant per distinct credential,
// database and role.
func (s *Server) revalidateCtx(ctx context.Context, keep func(*session) bool) error {
	sessions := s.snapshot(func(ss *session) bool {
		return ss.target.CredentialID != "" && (keep == nil || keep(ss))
	})
	if len(sessions) == 0 {
		return nil
	}
	idx := make(map[Grant]int, len(sessions))
	var grants []Grant
	for _, ss := range sessions {
		g := ss.grant()
		if _, ok := idx[g]; !ok {
			idx[g] = len(grants)
			grants = append(grants, g)
		}
	}
	st, err := s.auth.StillAuthorized(ctx, grants)
	if err == nil && len(st) != len(grants) {
		err = fmt.Errorf("StillAuthorized returned %d verdicts for %d grants", len(st), len(grants))
	}
	if err != nil {
		return fmt.Errorf("proxy: re-check permissions: %w", err)
	}
	for i, v := range st {
		if v != GrantHolds {
			s.log.Info("proxy: a session grant no longer holds; ending its sessions", "credential_id", grants[i].CredentialID,
				"database_id", grants[i].DatabaseID, "role", grants[i].PGRole, "credential_invalid", v == GrantCredentialInvalid)
		}
	}
	for _, ss := range sessions {
		switch st[idx[ss.grant()]] {
		case GrantCredentialInvalid:
			ss.terminate(revokedMsg(), true)
		case GrantWithdrawn:
			ss.terminate(fatal("57P01", fmt.Sprintf("terminating connection because permission to database %s was withdrawn or changed; reconnect if the API key or token still has access", ss.dbName)), true)
		}
	}
	return nil
}

func revokedMsg() *errorMsg {
	return fatal("57P01", "terminating connection because the API key or token that opened it was revoked or has expired; reconnect with a valid key")
}

// grant is what the session was admitted with.
func (ss *session) grant() Grant {
	return Grant{CredentialID: ss.target.CredentialID, DatabaseID: ss.target.DatabaseID, PGRole: ss.target.PGRole}
}
