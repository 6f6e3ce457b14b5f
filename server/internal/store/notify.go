package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// AccessChannel is the PostgreSQL NOTIFY channel on which the store
// announces changes to who a credential is and which databases and roles
// it gets. Every bitd replica LISTENs on it (package access) and drops the
// cached answers the payload names.
//
// A payload is a space-separated list of tags:
//
//	cred:<credential id>   an API key or access token was revoked
//	user:<user id>         everything about a user
//	sa:<service account id>
//	acct:<account id>      an account, its members and its databases
//	db:<database id>       one database
//	all                    everything
const AccessChannel = "bitkit_access"

// CredTag names the cached answers of an API key or access token; it is
// announced only when the credential is revoked (wire proxies end its
// sessions).
func CredTag(id string) string { return "cred:" + id }

// UserTag names the cached answers of a user's credentials.
func UserTag(id string) string { return "user:" + id }

// SATag names the cached answers of a service account's keys.
func SATag(id string) string { return "sa:" + id }

// AccountTag names the cached answers about an account and its databases.
func AccountTag(id string) string { return "acct:" + id }

// DBTag names the cached resolutions of one database.
func DBTag(id string) string { return "db:" + id }

// AllTag drops every cached answer.
const AllTag = "all"

// maxNotifyPayload keeps payloads under PostgreSQL's 8000-byte limit; a
// longer list of tags is sent as AllTag.
const maxNotifyPayload = 7000

// accessHooks are the in-process subscribers of access changes.
type accessHooks struct {
	mu   sync.RWMutex
	subs []func(tags []string)
}

// OnAccessChange registers f to run, synchronously and after the commit,
// with the tags of every access change this process makes, so the replica
// that made a change never serves the old answer (other replicas learn it
// through AccessChannel). f must be fast and must not call the store.
func (s *Store) OnAccessChange(f func(tags []string)) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.subs = append(s.hooks.subs, f)
}

func (s *Store) accessChanged(tags []string) {
	if len(tags) == 0 {
		return
	}
	if s.root != nil { // another cluster's Store (clusters.go): the subscribers are the root's
		s.root.accessChanged(tags)
		return
	}
	s.hooks.mu.RLock()
	defer s.hooks.mu.RUnlock()
	for _, f := range s.hooks.subs {
		f(tags)
	}
}

// notifyPayload joins tags, or answers AllTag when they do not fit.
func notifyPayload(tags []string) string {
	p := strings.Join(tags, " ")
	if len(p) > maxNotifyPayload {
		return AllTag
	}
	return p
}

// changeAccess runs f in a transaction. f returns the tags of the access
// answers it changed; they are published on AccessChannel in the same
// transaction (other replicas hear of the change exactly when it commits)
// and dropped from this process's caches right after the commit.
func (s *Store) changeAccess(ctx context.Context, f func(tx pgx.Tx) ([]string, error)) error {
	var tags []string
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var err error
		if tags, err = f(tx); err != nil || len(tags) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, AccessChannel, notifyPayload(tags)); err != nil {
			return fmt.Errorf("announce access change: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.accessChanged(tags)
	return nil
}
