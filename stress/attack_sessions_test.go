package stress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Wire sessions follow permissions, readers cannot hold the owner's DDL
// hostage, and a reader cannot change its shared role for the others.

// waitEnded blocks until bitd ends the wire session conn and returns the
// error the client got; it fails the test when the session is still open
// after within.
func waitEnded(t *testing.T, conn *pgx.Conn, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	err := conn.PgConn().WaitForNotification(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the wire session is still open after %v", within)
	}
	if err == nil {
		t.Fatal("the wire session got a notification instead of being ended")
	}
	return err
}

// wantPgError fails unless err is a PostgreSQL error with code whose message
// contains every one of parts.
func wantPgError(t *testing.T, what string, err error, code string, parts ...string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: got %v, want SQLSTATE %s", what, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(pe.Message, p) {
			t.Fatalf("%s: message %q does not say %q", what, pe.Message, p)
		}
	}
	return pe
}

// metadataConn opens the metadata database of a bitd dev instance, as
// another replica (or an operator) would change it.
func metadataConn(t *testing.T, s *bitdtest.Server) *pgx.Conn {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "bitd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		DatabaseURL string `json:"database_url"`
		MetadataDB  string `json:"metadata_db"`
	}
	if err := json.Unmarshal(b, &info); err != nil || info.DatabaseURL == "" || info.MetadataDB == "" {
		t.Fatalf("bitd.json: %v (database URL set: %v, metadata database %q)", err, info.DatabaseURL != "", info.MetadataDB)
	}
	cfg, err := pgx.ParseConfig(info.DatabaseURL)
	if err != nil {
		t.Fatal("bitd.json: invalid database URL")
	}
	cfg.Database = info.MetadataDB
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to the metadata database: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestAttackSessionOutlivesPermission: open wire sessions end when the
// permission that admitted them is lost: a public reader's when the owner
// makes the database private (at once, on the replica that made the
// change), a service account's when its database list changes and a
// member's when its role is downgraded (within the re-check bound, as when
// another replica made the change).
func TestAttackSessionOutlivesPermission(t *testing.T) {
	t.Parallel()
	s := startScanned(t)
	needWire(t, s)
	alice := newClient(s.Endpoint, s.APIKey)
	bob, bobKey := otherUser(t, s, "bob")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	t.Run("public database made private", func(t *testing.T) {
		tried(t, "a public reader's open wire session after the database is made private")
		db := alice.createDB(t, "pub"+randSuffix(), false)
		alice.mustQuery(t, db, "create table t (v text); insert into t values ('before')")
		conn, err := proxyConnect(ctx, s.PGAddr, db, bobKey)
		if err != nil {
			t.Fatalf("bob cannot open the public database through the proxy: %v", err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("bob reads %d rows, %v", n, err)
		}
		if r := alice.do(t, "PATCH", "/v2beta/db/"+db, map[string]any{"is_private": true}); r.Status != 200 {
			t.Fatalf("make %s private: %d %s", db, r.Status, r.Raw)
		}
		alice.mustQuery(t, db, "insert into t values ('after')")
		err = waitEnded(t, conn, time.Minute)
		pe := wantPgError(t, "bob's session after the database was made private", err, "57P01", "permission to database "+db, "withdrawn")
		if _, err := proxyConnect(ctx, s.PGAddr, db, bobKey); err == nil {
			t.Fatal("bob opened a new wire session to the now private database")
		} else {
			wantPgError(t, "bob reconnecting", err, "3D000")
		}
		if r := bob.query(t, db, "select v from t"); r.Status != 404 {
			t.Fatalf("bob's HTTP query after the change: %d %s", r.Status, r.Raw)
		}
		record(t, "a public reader holds a wire session open while the owner makes the database private, then tries to read rows inserted after",
			"the session is ended when the change is saved (FATAL "+pe.Code+" "+firstLine(strings.ReplaceAll(pe.Message, db, "acct/db"))+"); reconnecting gets 3D000 and HTTP 404: the new rows are never read")
	})

	t.Run("service account's database list changed", func(t *testing.T) {
		tried(t, "a service account's open wire session after its database list changes")
		db := alice.createDB(t, "sa"+randSuffix(), true)
		alice.mustQuery(t, db, "create table t (v text); insert into t values ('before')")
		r := alice.do(t, "POST", "/v2beta/service-account/", map[string]any{"name": "etl" + randSuffix(), "role": "WRITER", "databases": []string{db}})
		if r.Status != 201 {
			t.Fatalf("create service account: %d %s", r.Status, r.Raw)
		}
		saID := r.str("id")
		r = alice.do(t, "POST", "/v2beta/service-account/"+saID+"/api-key/", nil)
		saKey := r.str("api_key")
		if r.Status != 200 || saKey == "" {
			t.Fatalf("create service-account key: %d %s", r.Status, r.Raw)
		}
		remember(saKey)
		conn, err := proxyConnect(ctx, s.PGAddr, db, saKey)
		if err != nil {
			t.Fatalf("the service account cannot open its database: %v", err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "insert into t values ('by the service account')"); err != nil {
			t.Fatalf("service account insert: %v", err)
		}
		// Another replica (or an operator) takes the database off the
		// service account's list: no hook runs in this bitd.
		meta := metadataConn(t, s)
		tag, err := meta.Exec(ctx, "DELETE FROM service_account_databases WHERE service_account_id = $1", saID)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("remove the database from the service account: %v (%d rows)", err, tag.RowsAffected())
		}
		err = waitEnded(t, conn, time.Minute)
		pe := wantPgError(t, "the service account's session after its database list changed", err, "57P01", "withdrawn")
		if _, err := proxyConnect(ctx, s.PGAddr, db, saKey); err == nil {
			t.Fatal("the service account opened a new session to a database no longer on its list")
		}
		record(t, "a WRITER service account holds a wire session open while its database is taken off its list (by another replica)",
			"the session is ended within the 2 s re-check (FATAL "+pe.Code+" "+firstLine(strings.ReplaceAll(pe.Message, db, "acct/db"))+"); reconnecting is refused")
	})

	t.Run("member downgraded from WRITER to READER", func(t *testing.T) {
		tried(t, "a member's open wire session after its role is downgraded")
		org := "org" + randSuffix()
		s.Admin(t, "account", "create", org, "--owner", s.User)
		carolName := "carol" + randSuffix()
		carolKey := s.NewUser(t, carolName, "")
		remember(carolKey)
		s.Admin(t, "account", "add-member", org, carolName, "--role", "WRITER")
		db := alice.createDB(t, org+"/w"+randSuffix(), true)
		alice.mustQuery(t, db, "create table t (v text)")
		conn, err := proxyConnect(ctx, s.PGAddr, db, carolKey)
		if err != nil {
			t.Fatalf("carol cannot open the org's database: %v", err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "insert into t values ('as a writer')"); err != nil {
			t.Fatalf("carol's insert as a WRITER: %v", err)
		}
		s.Admin(t, "account", "add-member", org, carolName, "--role", "READER")
		err = waitEnded(t, conn, time.Minute)
		pe := wantPgError(t, "carol's WRITER session after the downgrade", err, "57P01", "withdrawn or changed")
		conn2, err := proxyConnect(ctx, s.PGAddr, db, carolKey)
		if err != nil {
			t.Fatalf("carol cannot reconnect as a READER: %v", err)
		}
		defer conn2.Close(context.Background())
		if _, err := conn2.Exec(ctx, "insert into t values ('after the downgrade')"); err == nil {
			t.Fatal("carol still writes after her downgrade to READER")
		}
		record(t, "a WRITER member holds a wire session open while its role is downgraded to READER (by another process)",
			"the writer session is ended within the 2 s re-check (FATAL "+pe.Code+" "+firstLine(strings.ReplaceAll(pe.Message, db, "acct/db"))+"); the new session is read-only")
	})
}

// TestAttackReaderHoldsDDLHostage: a public reader opens a transaction over
// the wire, reads a table (taking a lock), turns the server's own
// idle-in-transaction timeout off and waits; the owner's TRUNCATE over HTTP
// still succeeds, because bitd ends the idle reader session.
func TestAttackReaderHoldsDDLHostage(t *testing.T) {
	t.Parallel()
	tried(t, "a public reader holds a transaction open over the wire")
	s := startScanned(t, bitdtest.Args("--pg-reader-idle-in-transaction-timeout", "2s"))
	needWire(t, s)
	alice := newClient(s.Endpoint, s.APIKey)
	_, bobKey := otherUser(t, s, "bob")
	db := alice.createDB(t, "hostage", false)
	alice.mustQuery(t, db, "create table t (v text); insert into t values ('one'), ('two')")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	conn, err := proxyConnect(ctx, s.PGAddr, db, bobKey)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var lockTimeout string
	if err := conn.QueryRow(ctx, "show lock_timeout").Scan(&lockTimeout); err != nil || lockTimeout == "0" {
		t.Fatalf("a reader session's lock_timeout is %q (%v); want bitd's bound", lockTimeout, err)
	}
	for _, q := range []string{"set idle_in_transaction_session_timeout = 0", "begin", "select * from t"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	r := alice.do(t, "POST", "/v2beta/query", map[string]any{"database_name": db, "query_string": "truncate t", "timeout_ms": 60000})
	if r.Status != 200 {
		t.Fatalf("the owner's TRUNCATE while a reader holds a transaction open: %d %s", r.Status, r.Raw)
	}
	pe := wantPgError(t, "the reader's idle transaction", waitEnded(t, conn, time.Minute), "25P03", "idle-in-transaction")
	if n := alice.mustQuery(t, db, "select count(*) from t"); !strings.Contains(string(n.Raw), "[[0]]") {
		t.Fatalf("after TRUNCATE: %s", n.Raw)
	}
	record(t, "a public reader holds BEGIN; SELECT … open over the wire (after SET idle_in_transaction_session_timeout = 0) while the owner runs TRUNCATE",
		fmt.Sprintf("the reader session is ended by bitd's 2 s bound (FATAL %s %s); the owner's TRUNCATE succeeds; readers start with lock_timeout %s", pe.Code, firstLine(pe.Message), lockTimeout))
}

// TestAttackReaderTampersRoleSettings: a public reader runs ALTER ROLE
// CURRENT_USER SET statement_timeout = '1ms' over the wire; other readers'
// new wire sessions never see the setting.
func TestAttackReaderTampersRoleSettings(t *testing.T) {
	t.Parallel()
	tried(t, "a reader sets its shared role's statement_timeout")
	s := startScanned(t)
	needWire(t, s)
	alice := newClient(s.Endpoint, s.APIKey)
	db := alice.createDB(t, "shared", false)
	alice.mustQuery(t, db, "create table t (v text); insert into t values ('one')")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var readers []string
	for range 4 {
		k := s.NewUser(t, "reader"+randSuffix(), "")
		remember(k)
		readers = append(readers, k)
	}
	show := func(key string) (string, error) {
		conn, err := proxyConnect(ctx, s.PGAddr, db, key)
		if err != nil {
			return "", err
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "select pg_sleep(0.05)"); err != nil {
			return "", err
		}
		var st string
		err = conn.QueryRow(ctx, "show statement_timeout").Scan(&st)
		return st, err
	}
	before, err := show(readers[1])
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := proxyConnect(ctx, s.PGAddr, db, readers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close(context.Background())
	refused := ""
	for round := range 3 {
		if _, err := attacker.Exec(ctx, "alter role current_user set statement_timeout = '1ms'"); err != nil {
			refused = firstLine(err.Error()) // refusing it outright is fine too
			break
		}
		for i, k := range readers[1:] {
			st, err := show(k)
			if err != nil {
				t.Fatalf("round %d: reader %d's new wire session after the tampering: %v", round, i+1, err)
			}
			if st != before {
				t.Fatalf("round %d: reader %d sees statement_timeout %q, want %q", round, i+1, st, before)
			}
		}
	}
	outcome := fmt.Sprintf("bitd resets the role before relaying: 3 rounds × 3 other readers' new sessions ran pg_sleep(0.05) and saw statement_timeout %s", before)
	if refused != "" {
		outcome = "refused: " + refused
	}
	record(t, "a public reader runs ALTER ROLE CURRENT_USER SET statement_timeout = '1ms' over the wire; other readers connect", outcome)
}
