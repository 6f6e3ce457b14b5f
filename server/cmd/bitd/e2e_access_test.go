package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5"
)

// replicaWait bounds how long a test waits for the other replica to see a
// change (the documented bound is far lower; this only keeps a broken
// build from hanging).
const replicaWait = 20 * time.Second

// eventually polls f (testwait) until it is true or replicaWait passed,
// and returns how long it took.
func eventually(t *testing.T, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	testwait.Eventually(t, replicaWait, func() error {
		if !f() {
			return errors.New(what + ": not seen yet")
		}
		return nil
	})
	return time.Since(start)
}

// sqlAs runs sql through POST /v2beta/query.
func sqlAs(t *testing.T, endpoint, cred, db, sql string) resp {
	t.Helper()
	return call(t, "POST", endpoint+"/v2beta/query", cred, map[string]any{"database_name": db, "query_string": sql})
}

// roleAs is the PostgreSQL role a query of cred on db runs as ("" when
// the query is refused).
func roleAs(t *testing.T, endpoint, cred, db string) string {
	t.Helper()
	r := sqlAs(t, endpoint, cred, db, "SELECT current_user AS r")
	if r.Status != http.StatusOK {
		t.Logf("current_user on %s: %s", db, r.Raw)
		return ""
	}
	rows, _ := r.Body["data"].([]any)
	if len(rows) != 1 {
		t.Fatalf("current_user answer %s", r.Raw)
	}
	row, _ := rows[0].([]any)
	if len(row) != 1 {
		t.Fatalf("current_user answer %s", r.Raw)
	}
	s, _ := row[0].(string)
	if s == "" {
		t.Fatalf("current_user answer %s", r.Raw)
	}
	return s
}

func status(t *testing.T, endpoint, cred, db string) int {
	t.Helper()
	return sqlAs(t, endpoint, cred, db, "SELECT 1").Status
}

// metaConn is a superuser connection to the metadata database of s.
func metaConn(t *testing.T, s *bitdtest.Server) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = s.MetadataDB
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestAccessCacheReplicas runs two bitd replicas on one metadata database
// and checks that every change made through one (or through bitd admin,
// or the store directly) is refused or reflected by the other, which
// serves principals and databases from its cache, and at once by the
// replica that made it.
func TestAccessCacheReplicas(t *testing.T) {
	a := bitdtest.Start(t, bitdtest.SharedSecret())
	b := bitdtest.Start(t, bitdtest.Replica(a))
	A, B, user := a.Endpoint, b.Endpoint, a.User
	meta := metaConn(t, a)
	want(t, call(t, "POST", A+"/v2beta/db/", a.APIKey, map[string]any{"name": "cache_db"}), 201, "")
	db := user + "/cache_db"

	// newKey is a fresh API key of the demo user, warmed on both replicas.
	newKey := func(t *testing.T) string {
		r := call(t, "POST", A+"/v2beta/api-key/", a.APIKey, nil)
		want(t, r, 200, "")
		k := r.str("api_key")
		for _, e := range []string{A, B, B} {
			if st := status(t, e, k, db); st != 200 {
				t.Fatalf("fresh key: status %d on %s", st, e)
			}
		}
		return k
	}

	t.Run("answers come from the cache until a notification drops them", func(t *testing.T) {
		k := newKey(t)
		// Revoke behind bitd's back, without the notification: the
		// replicas keep serving the cached principal...
		var id string
		if err := meta.QueryRow(t.Context(), `UPDATE api_keys SET revoked_at = now() WHERE hash = $1 RETURNING id`,
			secret.HashCredential(k)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for _, e := range []string{A, B} {
			if st := status(t, e, k, db); st != 200 {
				t.Fatalf("%s did not serve the key from its cache: status %d", e, st)
			}
		}
		// ...until the notification every store change sends arrives.
		if _, err := meta.Exec(t.Context(), `SELECT pg_notify($1, $2)`, store.AccessChannel, store.CredTag(id)); err != nil {
			t.Fatal(err)
		}
		for _, e := range []string{A, B} {
			eventually(t, "notified revoke refused", func() bool { return status(t, e, k, db) == 401 })
		}
	})

	t.Run("key revoke", func(t *testing.T) {
		k := newKey(t)
		want(t, call(t, "DELETE", A+"/v2beta/api-key/?api_key="+k, a.APIKey, nil), 200, "")
		want(t, call(t, "GET", A+"/v2beta/db/", k, nil), 401, "unauthorized") // at once on A
		eventually(t, "revoked key refused by the replica", func() bool { return status(t, B, k, db) == 401 })
	})

	t.Run("revoke every key of the user", func(t *testing.T) {
		bob := a.NewUser(t, "cache_bob", "")
		want(t, call(t, "POST", A+"/v2beta/db/", bob, map[string]any{"name": "bobdb"}), 201, "")
		want(t, call(t, "GET", B+"/v2beta/db/", bob, nil), 200, "")
		want(t, sqlAs(t, B, bob, "cache_bob/bobdb", "SELECT 1"), 200, "")
		want(t, call(t, "DELETE", A+"/v2beta/api-key/", bob, nil), 200, "")
		want(t, call(t, "GET", A+"/v2beta/db/", bob, nil), 401, "unauthorized")
		eventually(t, "revoked keys refused by the replica", func() bool { return status(t, B, bob, "cache_bob/bobdb") == 401 })
	})

	t.Run("logout", func(t *testing.T) {
		a.NewUser(t, "cache_carol", "carol-pass-9")
		r := call(t, "POST", A+"/auth/v1/login", "", map[string]any{"username": "cache_carol", "password": "carol-pass-9"})
		want(t, r, 200, "")
		tok := r.str("access_token")
		want(t, call(t, "GET", B+"/v2beta/db/", tok, nil), 200, "")
		want(t, call(t, "GET", B+"/v2beta/db/", tok, nil), 200, "")
		want(t, call(t, "DELETE", A+"/auth/v1/token", tok, nil), 200, "")
		want(t, call(t, "GET", A+"/v2beta/db/", tok, nil), 401, "unauthorized")
		eventually(t, "logged-out token refused by the replica", func() bool {
			return call(t, "GET", B+"/v2beta/db/", tok, nil).Status == 401
		})
	})

	t.Run("membership change", func(t *testing.T) {
		dan := a.NewUser(t, "cache_dan", "")
		a.Admin(t, "account", "create", "cache_org", "--owner", user)
		want(t, call(t, "POST", A+"/v2beta/db/", a.APIKey, map[string]any{"name": "orgdb", "account": "cache_org"}), 201, "")
		a.Admin(t, "account", "add-member", "cache_org", "cache_dan", "--role", "READER")
		odb := "cache_org/orgdb"
		if r := roleAs(t, B, dan, odb); !strings.HasSuffix(r, store.ReaderSuffix) {
			t.Fatalf("member READER runs as %q", r)
		}
		a.Admin(t, "account", "add-member", "cache_org", "cache_dan", "--role", "WRITER")
		eventually(t, "membership change reflected by the replica", func() bool {
			return strings.HasSuffix(roleAs(t, B, dan, odb), store.WriterSuffix)
		})
		eventually(t, "membership change reflected by the first replica", func() bool {
			return strings.HasSuffix(roleAs(t, A, dan, odb), store.WriterSuffix)
		})
	})

	t.Run("database rename", func(t *testing.T) {
		want(t, call(t, "POST", A+"/v2beta/db/", a.APIKey, map[string]any{"name": "old_name"}), 201, "")
		for range 2 {
			want(t, sqlAs(t, B, a.APIKey, user+"/old_name", "SELECT 1"), 200, "")
		}
		want(t, call(t, "PATCH", A+"/v2beta/db/"+user+"/old_name", a.APIKey, map[string]any{"name": "new_name"}), 200, "")
		want(t, sqlAs(t, A, a.APIKey, user+"/old_name", "SELECT 1"), 404, "not_found")
		eventually(t, "renamed database gone under its old name on the replica", func() bool {
			return status(t, B, a.APIKey, user+"/old_name") == 404
		})
		want(t, sqlAs(t, B, a.APIKey, user+"/new_name", "SELECT 1"), 200, "")
	})

	t.Run("privacy", func(t *testing.T) {
		erin := a.NewUser(t, "cache_erin", "")
		want(t, call(t, "POST", A+"/v2beta/db/", a.APIKey, map[string]any{"name": "pub_db", "is_private": false}), 201, "")
		pdb := user + "/pub_db"
		for range 2 {
			if r := roleAs(t, B, erin, pdb); !strings.HasSuffix(r, store.PublicSuffix) { // the public readers' role
				t.Fatalf("stranger on a public database runs as %q", r)
			}
		}
		want(t, call(t, "PATCH", A+"/v2beta/db/"+pdb, a.APIKey, map[string]any{"is_private": true}), 200, "")
		want(t, sqlAs(t, A, erin, pdb, "SELECT 1"), 404, "not_found")
		eventually(t, "private database hidden by the replica", func() bool { return status(t, B, erin, pdb) == 404 })
	})

	t.Run("delete", func(t *testing.T) {
		want(t, call(t, "POST", A+"/v2beta/db/", a.APIKey, map[string]any{"name": "gone_db"}), 201, "")
		for range 2 {
			want(t, sqlAs(t, B, a.APIKey, user+"/gone_db", "SELECT 1"), 200, "")
		}
		want(t, call(t, "DELETE", A+"/v2beta/db/"+user+"/gone_db", a.APIKey, nil), 200, "")
		eventually(t, "deleted database refused by the replica", func() bool {
			return status(t, B, a.APIKey, user+"/gone_db") == 404
		})
	})

	t.Run("collaborators", func(t *testing.T) {
		fay := a.NewUser(t, "cache_fay", "")
		r := call(t, "POST", A+"/v2beta/db/", a.APIKey, map[string]any{"name": "collab_db"})
		want(t, r, 201, "")
		dbID, cdb := r.str("id"), user+"/collab_db"
		want(t, sqlAs(t, B, fay, cdb, "SELECT 1"), 404, "not_found")
		var fayID string
		if err := meta.QueryRow(t.Context(), `SELECT id FROM users WHERE name = 'cache_fay'`).Scan(&fayID); err != nil {
			t.Fatal(err)
		}
		// Change them through the store, as a third process on the same
		// metadata database (TestCollaborators drives the HTTP routes).
		st, err := store.Open(t.Context(), store.Options{AdminURL: bitdtest.DatabaseURL(t), MetadataDB: a.MetadataDB, MustExist: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.AddCollaborator(t.Context(), dbID, fayID, "READER"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "new collaborator admitted by the replica", func() bool {
			return strings.HasSuffix(roleAs(t, B, fay, cdb), store.ReaderSuffix)
		})
		if err := st.AddCollaborator(t.Context(), dbID, fayID, "WRITER"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "collaborator role change reflected by the replica", func() bool {
			return strings.HasSuffix(roleAs(t, B, fay, cdb), store.WriterSuffix)
		})
	})

	t.Run("service account keys", func(t *testing.T) {
		r := call(t, "POST", A+"/v2beta/service-account/", a.APIKey, map[string]any{"name": "cache_sa", "role": "READER", "databases": []string{db}})
		want(t, r, 201, "")
		saID := r.str("id")
		r = call(t, "POST", A+"/v2beta/service-account/"+saID+"/api-key/", a.APIKey, nil)
		want(t, r, 200, "")
		sk := r.str("api_key")
		for range 2 {
			if r := roleAs(t, B, sk, db); !strings.HasSuffix(r, store.ReaderSuffix) {
				t.Fatalf("service account runs as %q", r)
			}
		}
		want(t, call(t, "DELETE", A+"/v2beta/service-account/"+saID+"/api-key/", a.APIKey, nil), 200, "")
		want(t, sqlAs(t, A, sk, db, "SELECT 1"), 401, "unauthorized")
		eventually(t, "revoked service-account key refused by the replica", func() bool { return status(t, B, sk, db) == 401 })
	})

	t.Run("listener killed", func(t *testing.T) {
		app := access.ListenerApplicationName + " " + strconv.Itoa(b.Pid())
		listenerPid := func() int {
			var pid int
			err := meta.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&pid)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		eventually(t, "replica listening", func() bool { return listenerPid() != 0 })
		for round := range 3 {
			k := newKey(t)
			pid := listenerPid()
			var ok bool
			if err := meta.QueryRow(t.Context(), `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&ok); err != nil || !ok {
				t.Fatalf("terminate the listener: %v %v", ok, err)
			}
			// Between the kill and the re-listen no notification reaches
			// the replica; the revoke must be refused all the same, on the
			// very first request.
			want(t, call(t, "DELETE", A+"/v2beta/api-key/?api_key="+k, a.APIKey, nil), 200, "")
			if st := status(t, B, k, db); st != 401 {
				t.Fatalf("round %d: the replica whose listener was killed served a revoked key (status %d)", round, st)
			}
			// A live key keeps working while the listener is down or back.
			want(t, sqlAs(t, B, a.APIKey, db, "SELECT 1"), 200, "")
			eventually(t, "replica listening again", func() bool { p := listenerPid(); return p != 0 && p != pid })
		}
		if !strings.Contains(b.Logs(), "access-change listener lost its connection") {
			t.Errorf("the replica did not log the lost listener")
		}
	})

	t.Run("wire session on the other replica", func(t *testing.T) {
		k := newKey(t)
		c := wireConn(t, b, k, db)
		if _, err := c.Exec(t.Context(), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		want(t, call(t, "DELETE", A+"/v2beta/api-key/?api_key="+k, a.APIKey, nil), 200, "")
		start := time.Now()
		var err error
		eventually(t, "the other replica's wire session ended", func() bool {
			_, err = c.Exec(t.Context(), "SELECT 1")
			return err != nil
		})
		if !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("the session ended with %v, want the revocation message", err)
		}
		t.Logf("a wire session on the other replica ended %v after the revoke answered", time.Since(start))
	})

	t.Run("cross-replica bound", func(t *testing.T) {
		// Measured, not asserted (the machine is shared): how long after
		// the revoke on A answered does B refuse the key.
		const n = 25
		var d []time.Duration
		for range n {
			k := newKey(t)
			want(t, call(t, "DELETE", A+"/v2beta/api-key/?api_key="+k, a.APIKey, nil), 200, "")
			start := time.Now()
			eventually(t, "revoked key refused by the replica", func() bool {
				return call(t, "GET", B+"/v2beta/db/", k, nil).Status == 401
			})
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		msg := fmt.Sprintf("revoke on one replica -> refused by the other: median %v, max %v over %d revokes", d[n/2], d[n-1], n)
		t.Log(msg)
	})
}
