package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// collabPath is the collaborators route of db ("account/name"), with the
// user appended when given.
func collabPath(endpoint, db, user string) string {
	return endpoint + "/v2beta/db/" + db + "/collaborators/" + user
}

// importCSV uploads csv into table of db as cred and returns the answer to
// the job creation.
func importCSV(t *testing.T, endpoint, cred, db, table, csv string) resp {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.WriteField("table_name", table); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreateFormFile("file", table+".csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write([]byte(csv)); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), "POST", endpoint+"/v2beta/db/"+db+"/import/", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out resp
	out.Status, out.Header = res.StatusCode, res.Header
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(res.Body); err != nil {
		t.Fatal(err)
	}
	out.Raw = buf.Bytes()
	if err := jsonx.Unmarshal(out.Raw, &out.Body); err != nil {
		t.Fatalf("import answer is not JSON: %s", out.Raw)
	}
	return out
}

// waitJob polls a job's status URL as cred until it ends and returns it.
func waitJob(t *testing.T, cred string, job resp) resp {
	t.Helper()
	u := job.str("status_url")
	if u == "" {
		t.Fatalf("job without status_url: %s", job.Raw)
	}
	var r resp
	testwait.Eventually(t, 4*time.Minute, func() error {
		r = call(t, "GET", u, cred, nil)
		want(t, r, 200, "")
		if st := r.str("state"); st != "DONE" && st != "FAILED" {
			return fmt.Errorf("job still %s", st)
		}
		return nil
	})
	return r
}

// streamAs runs sql as an NDJSON stream and returns the answer's status and
// its lines.
func streamAs(t *testing.T, endpoint, cred, db, sql string) (int, []string) {
	t.Helper()
	body, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": sql})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", endpoint+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var lines []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return res.StatusCode, lines
}

// listed returns the role the caller sees db with in GET /v2beta/db/ (""
// when it is not listed).
func listed(t *testing.T, endpoint, cred, db string) string {
	t.Helper()
	r := call(t, "GET", endpoint+"/v2beta/db/", cred, nil)
	want(t, r, 200, "")
	dbs, _ := r.Body["databases"].([]any)
	for _, d := range dbs {
		m, _ := d.(map[string]any)
		if m["name"] == db {
			role, _ := m["role"].(string)
			return role
		}
	}
	return ""
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestCollaborators drives a collaborator's whole life through every way
// into a database (HTTP query, batch, stream, import and export jobs, the
// wire proxy): added as READER (reads work, writes fail with PostgreSQL's
// permission error), promoted to WRITER (writes work, the READER wire
// session is ended), removed (the open wire session and a query running in
// it end, the next HTTP request is refused), and who may manage them.
func TestCollaborators(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	E, owner := s.Endpoint, s.APIKey
	bob := s.NewUser(t, "collab_bob", "")
	carl := s.NewUser(t, "collab_carl", "")
	dave := s.NewUser(t, "collab_dave", "")
	want(t, call(t, "POST", E+"/v2beta/db/", owner, map[string]any{"name": "shared"}), 201, "")
	db := s.User + "/shared"
	want(t, sqlAs(t, E, owner, db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)"), 200, "")

	t.Run("refusals", func(t *testing.T) {
		r := call(t, "PUT", collabPath(E, db, "nobody_here"), owner, map[string]any{"role": "READER"})
		want(t, r, 404, "not_found")
		if !strings.Contains(r.str("error"), `"nobody_here"`) {
			t.Errorf("404 for an unknown user does not name them: %s", r.Raw)
		}
		want(t, call(t, "DELETE", collabPath(E, db, "nobody_here"), owner, nil), 404, "not_found")
		r = call(t, "PUT", collabPath(E, db, s.User), owner, map[string]any{"role": "READER"})
		want(t, r, 400, "invalid_user")
		if !strings.Contains(r.str("error"), "yourself") {
			t.Errorf("sharing with yourself: %s", r.Raw)
		}
		want(t, call(t, "PUT", collabPath(E, db, "collab_bob"), owner, map[string]any{"role": "OWNER"}), 400, "invalid_field")
		want(t, call(t, "PUT", collabPath(E, db, "collab_bob"), owner, map[string]any{"role": "boss"}), 400, "invalid_field")
		want(t, call(t, "PUT", collabPath(E, db, "collab_bob"), owner, map[string]any{}), 400, "missing_field")
		want(t, call(t, "DELETE", collabPath(E, db, "collab_bob"), owner, nil), 404, "not_found")
		// A stranger cannot see the private database, nor its collaborators.
		want(t, call(t, "GET", collabPath(E, db, ""), bob, nil), 404, "not_found")
		want(t, call(t, "PUT", collabPath(E, db, "collab_bob"), bob, map[string]any{"role": "ADMIN"}), 404, "not_found")
		want(t, sqlAs(t, E, bob, db, "SELECT 1"), 404, "not_found")
	})

	// READER: every path reads; writes fail with PostgreSQL's own error.
	r := call(t, "PUT", collabPath(E, db, "collab_bob"), owner, map[string]any{"role": "reader"})
	want(t, r, 200, "")
	if r.str("username") != "collab_bob" || r.str("role") != "READER" {
		t.Fatalf("PUT answered %s", r.Raw)
	}
	r = call(t, "GET", collabPath(E, db, ""), owner, nil)
	want(t, r, 200, "")
	if got := string(r.Raw); !strings.Contains(got, `{"username":"collab_bob","role":"READER"}`) {
		t.Fatalf("collaborators list %s", got)
	}
	if got := listed(t, E, bob, db); got != "READER" {
		t.Fatalf("the collaborator sees %s in GET /db/ with role %q, want READER", db, got)
	}
	if r := roleAs(t, E, bob, db); !strings.HasSuffix(r, store.ReaderSuffix) {
		t.Fatalf("READER collaborator runs as %q", r)
	}
	r = sqlAs(t, E, bob, db, "INSERT INTO t VALUES (3)")
	want(t, r, 400, "")
	if r.str("sqlstate") != "42501" {
		t.Fatalf("READER's INSERT: want PostgreSQL's permission error 42501, got %s", r.Raw)
	}
	br := call(t, "POST", E+"/v2beta/query/batch", bob, map[string]any{"database_name": db,
		"queries": []map[string]any{{"query_string": "SELECT count(*) FROM t"}, {"query_string": "SELECT max(x) FROM t"}}})
	want(t, br, 200, "")
	if st, lines := streamAs(t, E, bob, db, "SELECT x FROM t ORDER BY x"); st != 200 || len(lines) < 3 {
		t.Fatalf("READER stream: status %d, lines %q", st, lines)
	}
	ex := call(t, "POST", E+"/v2beta/db/"+db+"/export/", bob, map[string]any{"query_string": "SELECT x FROM t", "export_format": "csv"})
	want(t, ex, 202, "")
	if j := waitJob(t, bob, ex); j.str("state") != "DONE" {
		t.Fatalf("READER export: %s", j.Raw)
	}
	im := importCSV(t, E, bob, db, "t", "x\n10\n")
	if im.Status == 202 { // admitted: the load itself must fail
		if j := waitJob(t, bob, im); j.str("state") != "FAILED" {
			t.Fatalf("READER import succeeded: %s", j.Raw)
		}
	} else if im.Status != 403 {
		t.Fatalf("READER import: status %d %s", im.Status, im.Raw)
	}
	wire := wireConn(t, s, bob, db)
	var n int
	if err := wire.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("READER over the wire: %d %v", n, err)
	}
	if _, err := wire.Exec(t.Context(), "INSERT INTO t VALUES (4)"); sqlState(err) != "42501" {
		t.Fatalf("READER's INSERT over the wire: want 42501, got %v", err)
	}

	// WRITER and ADMIN collaborators: who manages.
	want(t, call(t, "PUT", collabPath(E, db, "collab_bob"), owner, map[string]any{"role": "WRITER"}), 200, "")
	t.Run("the READER wire session ends when the role changes", func(t *testing.T) {
		eventually(t, "wire session with the old role ended", func() bool {
			_, err := wire.Exec(t.Context(), "SELECT 1")
			return err != nil
		})
	})
	if got := listed(t, E, bob, db); got != "WRITER" {
		t.Fatalf("role in GET /db/ after the change: %q", got)
	}
	want(t, sqlAs(t, E, bob, db, "INSERT INTO t VALUES (3)"), 200, "")
	want(t, call(t, "POST", E+"/v2beta/query/batch", bob, map[string]any{"database_name": db,
		"queries": []map[string]any{{"query_string": "INSERT INTO t VALUES (5)"}, {"query_string": "DELETE FROM t WHERE x = 5"}}}), 200, "")
	im = importCSV(t, E, bob, db, "t", "x\n10\n11\n")
	want(t, im, 202, "")
	if j := waitJob(t, bob, im); j.str("state") != "DONE" {
		t.Fatalf("WRITER import: %s", j.Raw)
	}
	wire = wireConn(t, s, bob, db)
	if _, err := wire.Exec(t.Context(), "INSERT INTO t VALUES (6)"); err != nil {
		t.Fatalf("WRITER's INSERT over the wire: %v", err)
	}
	r = call(t, "PUT", collabPath(E, db, "collab_carl"), bob, map[string]any{"role": "READER"})
	want(t, r, 403, "forbidden")
	if !strings.Contains(r.str("error"), "WRITER") {
		t.Errorf("the 403 does not say the caller's role: %s", r.Raw)
	}
	want(t, call(t, "GET", collabPath(E, db, ""), bob, nil), 403, "forbidden")
	want(t, call(t, "DELETE", collabPath(E, db, "collab_bob"), bob, nil), 403, "forbidden")

	want(t, call(t, "PUT", collabPath(E, db, "collab_dave"), owner, map[string]any{"role": "ADMIN"}), 200, "")
	if got := listed(t, E, dave, db); got != "ADMIN" {
		t.Fatalf("ADMIN collaborator's role in GET /db/: %q", got)
	}
	want(t, call(t, "PUT", collabPath(E, db, "collab_carl"), dave, map[string]any{"role": "READER"}), 200, "")
	want(t, sqlAs(t, E, carl, db, "SELECT count(*) FROM t"), 200, "")
	r = call(t, "PUT", collabPath(E, db, s.User), dave, map[string]any{"role": "READER"})
	want(t, r, 400, "invalid_user")
	if !strings.Contains(r.str("error"), "owns") {
		t.Errorf("sharing with the owner: %s", r.Raw)
	}
	want(t, call(t, "DELETE", collabPath(E, db, "collab_carl"), dave, nil), 200, "")
	want(t, sqlAs(t, E, carl, db, "SELECT 1"), 404, "not_found")

	// Removal mid-session: a query running in bob's wire session is
	// cancelled and the session ended; his next HTTP request is refused.
	running := make(chan error, 1)
	go func() {
		_, err := wire.Exec(t.Context(), "SELECT pg_sleep(60)")
		running <- err
	}()
	admin, err := pgx.Connect(t.Context(), bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(t.Context())
	eventually(t, "the collaborator's query running", func() bool {
		var n int
		if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND query = 'SELECT pg_sleep(60)' AND usename LIKE '%'||$1`, store.WriterSuffix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	want(t, sqlAs(t, E, bob, db, "SELECT 1"), 200, "")
	want(t, call(t, "DELETE", collabPath(E, db, "collab_bob"), owner, nil), 200, "")
	want(t, sqlAs(t, E, bob, db, "SELECT 1"), 404, "not_found")
	want(t, call(t, "POST", E+"/v2beta/query/batch", bob, map[string]any{"database_name": db, "queries": []map[string]any{{"query_string": "SELECT 1"}}}), 404, "not_found")
	if st, _ := streamAs(t, E, bob, db, "SELECT 1"); st != 404 {
		t.Fatalf("removed collaborator's stream: status %d", st)
	}
	want(t, call(t, "POST", E+"/v2beta/db/"+db+"/export/", bob, map[string]any{"query_string": "SELECT 1"}), 404, "not_found")
	want(t, importCSV(t, E, bob, db, "t", "x\n1\n"), 404, "not_found")
	if got := listed(t, E, bob, db); got != "" {
		t.Fatalf("the removed collaborator still sees %s (role %s)", db, got)
	}
	select {
	case err := <-running:
		if err == nil {
			t.Fatal("the removed collaborator's running query completed")
		}
		t.Logf("running query ended with: %v", err)
	case <-time.After(replicaWait):
		t.Fatal("the removed collaborator's running query was not ended")
	}
	if _, err := wire.Exec(t.Context(), "SELECT 1"); err == nil {
		t.Fatal("the removed collaborator's wire session still works")
	}
	cfg, err := pgx.ParseConfig("postgres://any@" + s.PGAddr + "/x?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password, cfg.Database = bob, db
	if c, err := pgx.ConnectConfig(t.Context(), cfg); err == nil {
		c.Close(t.Context())
		t.Fatal("the removed collaborator opened a new wire session")
	}
	r = call(t, "GET", collabPath(E, db, ""), owner, nil)
	want(t, r, 200, "")
	if got := string(r.Raw); strings.Contains(got, "collab_bob") || strings.Contains(got, "collab_carl") || !strings.Contains(got, "collab_dave") {
		t.Fatalf("collaborators after removals: %s", got)
	}
}

// TestCollaboratorRemovalAcrossReplicas removes a collaborator through one
// bitd replica while the other holds their answers in its cache and an open
// wire session: the other replica refuses their next HTTP request once the
// notification arrives, and ends the session.
func TestCollaboratorRemovalAcrossReplicas(t *testing.T) {
	t.Parallel()
	a := bitdtest.Start(t, bitdtest.SharedSecret())
	b := bitdtest.Start(t, bitdtest.Replica(a))
	A, B, owner := a.Endpoint, b.Endpoint, a.APIKey
	erin := a.NewUser(t, "collab_erin", "")
	want(t, call(t, "POST", A+"/v2beta/db/", owner, map[string]any{"name": "replicated"}), 201, "")
	db := a.User + "/replicated"
	want(t, call(t, "PUT", collabPath(A, db, "collab_erin"), owner, map[string]any{"role": "WRITER"}), 200, "")
	eventually(t, "the collaborator admitted by the other replica", func() bool { return status(t, B, erin, db) == 200 })
	want(t, sqlAs(t, B, erin, db, "SELECT 1"), 200, "") // served from B's cache now
	wire := wireConn(t, b, erin, db)
	if _, err := wire.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	want(t, call(t, "DELETE", collabPath(A, db, "collab_erin"), owner, nil), 200, "")
	want(t, sqlAs(t, A, erin, db, "SELECT 1"), 404, "not_found") // at once on A
	took := eventually(t, "the removal refused by the other replica", func() bool { return status(t, B, erin, db) == 404 })
	t.Logf("the other replica refused the removed collaborator %v after the removal answered", took)
	var err error
	eventually(t, "the other replica's wire session ended", func() bool {
		_, err = wire.Exec(t.Context(), "SELECT 1")
		return err != nil
	})
	if !strings.Contains(err.Error(), "withdrawn") {
		t.Fatalf("the session ended with %v, want the withdrawn-permission message", err)
	}
}
