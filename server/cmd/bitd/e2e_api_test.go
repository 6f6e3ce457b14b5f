package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// TestAPI drives one real `bitd dev` through the database and identity
// endpoints.
func TestAPI(t *testing.T) {
	t.Parallel()
	// bitd dev reserves no names by default; the subtests check bit.io's 30 days.
	s := bitdtest.Start(t, bitdtest.Args("--name-reservation", "720h"))
	E, key := s.Endpoint, s.APIKey
	user := s.User
	t.Cleanup(func() { // runs after every subtest, while bitd still runs
		logs := s.Logs()
		if m := regexp.MustCompile(`(v2|bkt)_[0-9A-Za-z]{43}`).FindString(logs); m != "" {
			t.Errorf("bitd logged a credential: %s…", m[:8])
		}
		for _, secret := range []string{"carol-pass-1", "dave-pass-1", "first-pass", "second-pass", dsnPassword(t)} {
			if strings.Contains(logs, secret) {
				t.Errorf("bitd logged a password (%d characters)", len(secret))
			}
		}
		if !strings.Contains(logs, "path=/v2beta/db/") {
			t.Errorf("the access log is missing: %.300s", logs)
		}
	})

	t.Run("trailing slash and DELETE bodies", func(t *testing.T) {
		t.Parallel()
		for i, slash := range []string{"", "/"} {
			name := fmt.Sprintf("slash%d", i)
			r := call(t, "POST", E+"/v2beta/db"+slash, key, map[string]any{"name": name})
			want(t, r, http.StatusCreated, "")
			if r.str("name") != user+"/"+name || r.Body["is_private"] != true || r.str("role") != "OWNER" {
				t.Fatalf("created database: %s", r.Raw)
			}
			for _, f := range []string{"id", "date_created", "storage_limit_bytes", "storage_usage_bytes", "usage_current", "usage_previous"} {
				if _, ok := r.Body[f]; !ok {
					t.Fatalf("Database object lacks %q: %s", f, r.Raw)
				}
			}
			uc, _ := r.Body["usage_current"].(map[string]any)
			if _, ok := uc["period_start"]; !ok || uc["rows_queried"] == nil {
				t.Fatalf("usage_current = %v", uc)
			}
			want(t, call(t, "GET", E+"/v2beta/db"+slash, key, nil), 200, "")
			path := E + "/v2beta/db/" + user + "/" + name + slash
			want(t, call(t, "GET", path, key, nil), 200, "")
			want(t, call(t, "PATCH", path, key, map[string]any{"storage_limit_bytes": 1000}), 200, "")
			r = call(t, "DELETE", path, key, nil)
			want(t, r, 200, "")
			if string(r.Raw) != "{}\n" {
				t.Fatalf("DELETE body %q, want {}", r.Raw)
			}
			r = call(t, "POST", E+"/v2beta/api-key"+slash, key, nil)
			want(t, r, 200, "")
			k2 := r.str("api_key")
			if !strings.HasPrefix(k2, "v2_") || r.str("username") != user {
				t.Fatalf("api-key answer %s", r.Raw)
			}
			r = call(t, "DELETE", E+"/v2beta/api-key"+slash+"?api_key="+k2, key, nil)
			want(t, r, 200, "")
			want(t, call(t, "GET", E+"/v2beta/db", k2, nil), 401, "unauthorized")
			want(t, call(t, "GET", E+"/v2beta/service-account"+slash, key, nil), 200, "")
		}
	})

	t.Run("unknown route and method", func(t *testing.T) {
		t.Parallel()
		want(t, call(t, "GET", E+"/v2beta/nothing-here", key, nil), 404, "not_found")
		r := call(t, "PUT", E+"/v2beta/db/", key, nil)
		want(t, r, 405, "method_not_allowed")
		if !strings.Contains(r.Header.Get("Allow"), "GET") {
			t.Fatalf("Allow = %q", r.Header.Get("Allow"))
		}
		want(t, call(t, "GET", E+"/v2beta//db", key, nil), 404, "not_found")
		r = call(t, "GET", E+"/healthz", "", nil)
		want(t, r, 200, "")
		if r.str("status") != "ok" || r.Header.Get("X-Request-Id") == "" {
			t.Fatalf("healthz: %s %v", r.Raw, r.Header)
		}
	})

	t.Run("names", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, rule string
		}{
			{"", "missing"},
			{"has space", "may only contain"},
			{"dot.name", "may only contain"},
			{strings.Repeat("a", 24), "maximum is 23"},
			{"ünïcode", "may only contain"},
			{"a/b/c", "more than one"},
			{"-acct/db", "must start with"},
			{strings.Repeat("x", 39) + "/db", "maximum is 38"},
		} {
			r := call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": tc.name})
			if tc.rule == "missing" {
				want(t, r, 400, "missing_field")
				continue
			}
			if r.Status == 400 && r.str("code") == "invalid_name" && strings.Contains(r.str("error"), tc.rule) {
				continue
			}
			if tc.name == "a/b/c" && r.Status == 400 && r.str("code") == "invalid_name" {
				continue
			}
			t.Errorf("name %q: %d %s; want 400 invalid_name mentioning %q", tc.name, r.Status, r.Raw, tc.rule)
		}
		ok := strings.Repeat("N", 23)
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": ok}), 201, "")
		r := call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": strings.ToLower(ok)})
		want(t, r, 409, "conflict")
		want(t, call(t, "GET", E+"/v2beta/db/"+user+"/"+strings.ToLower(ok), key, nil), 200, "")
	})

	t.Run("rename keeps data, delete reserves the name", func(t *testing.T) {
		t.Parallel()
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "keep"}), 201, "")
		c := wireConn(t, s, key, user+"/keep")
		if _, err := c.Exec(t.Context(), "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"); err != nil {
			t.Fatal(err)
		}
		c.Close(t.Context())
		r := call(t, "PATCH", E+"/v2beta/db/"+user+"/keep", key, map[string]any{"name": "Kept2"})
		want(t, r, 200, "")
		if r.str("name") != user+"/Kept2" {
			t.Fatalf("renamed: %s", r.Raw)
		}
		want(t, call(t, "GET", E+"/v2beta/db/"+user+"/keep", key, nil), 404, "not_found")
		c2 := wireConn(t, s, key, user+"/kept2")
		var v string
		if err := c2.QueryRow(t.Context(), "SELECT v FROM t").Scan(&v); err != nil || v != "kept" {
			t.Fatalf("data after rename: %q, %v", v, err)
		}
		// an open wire session and an HTTP query in flight do not block the delete
		qdone := make(chan resp, 1)
		go func() {
			qdone <- call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": user + "/kept2", "query_string": "SELECT pg_sleep(60)"})
		}()
		time.Sleep(300 * time.Millisecond) // let the query start; the test holds either way
		want(t, call(t, "DELETE", E+"/v2beta/db/"+user+"/kept2", key, nil), 200, "")
		if _, err := c2.Exec(t.Context(), "SELECT 1"); err == nil {
			t.Fatal("the wire session survived the delete")
		}
		if q := <-qdone; q.Status < 400 || q.Status >= 500 && q.Status != 503 {
			t.Fatalf("query during delete: %d %s", q.Status, q.Raw)
		}
		want(t, call(t, "GET", E+"/v2beta/db/"+user+"/kept2", key, nil), 404, "not_found")
		r = call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "KEPT2"})
		want(t, r, 409, "name_reserved")
		if !strings.Contains(r.str("error"), "reserved until "+time.Now().UTC().AddDate(0, 0, 30).Format("2006-01")) {
			t.Fatalf("reservation message lacks the date: %s", r.Raw)
		}
		// renaming another database onto a reserved name is refused too
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "other"}), 201, "")
		want(t, call(t, "PATCH", E+"/v2beta/db/"+user+"/other", key, map[string]any{"name": "kept2"}), 409, "name_reserved")
	})

	t.Run("isolation", func(t *testing.T) {
		t.Parallel()
		bkey := s.NewUser(t, "isob", "")
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "secret_db"}), 201, "")
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "open_db", "is_private": false}), 201, "")
		r := call(t, "GET", E+"/v2beta/db/"+user+"/secret_db", bkey, nil)
		want(t, r, 404, "not_found")
		r2 := call(t, "GET", E+"/v2beta/db/"+user+"/no_such_db", bkey, nil)
		if r.str("error") != strings.Replace(r2.str("error"), "no_such_db", "secret_db", 1) {
			t.Fatalf("404 for a private database differs from an unknown one: %q vs %q", r.str("error"), r2.str("error"))
		}
		want(t, call(t, "DELETE", E+"/v2beta/db/"+user+"/secret_db", bkey, nil), 404, "not_found")
		want(t, call(t, "PATCH", E+"/v2beta/db/"+user+"/secret_db", bkey, map[string]any{"is_private": false}), 404, "not_found")
		r = call(t, "GET", E+"/v2beta/db/"+user+"/open_db", bkey, nil)
		want(t, r, 200, "")
		if r.str("role") != "READER" {
			t.Fatalf("public database role for a stranger = %q, want READER", r.str("role"))
		}
		want(t, call(t, "DELETE", E+"/v2beta/db/"+user+"/open_db", bkey, nil), 403, "forbidden")
		r = call(t, "GET", E+"/v2beta/db/", bkey, nil)
		if dbs, _ := r.Body["databases"].([]any); len(dbs) != 0 {
			t.Fatalf("user B lists %d databases of others: %s", len(dbs), r.Raw)
		}
		// The reader role may read but not write, enforced by PostgreSQL.
		c := wireConn(t, s, key, user+"/open_db")
		if _, err := c.Exec(t.Context(), "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		cb := wireConn(t, s, bkey, user+"/open_db")
		var n int
		if err := cb.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("reader select: %d, %v", n, err)
		}
		if _, err := cb.Exec(t.Context(), "INSERT INTO t VALUES (2)"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("reader insert: %v, want permission denied", err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		r := call(t, "POST", E+"/v2beta/db/", key, `{"name": "x",`)
		want(t, r, 400, "invalid_json")
		if !strings.Contains(r.str("error"), "offset") {
			t.Fatalf("invalid_json lacks the offset: %s", r.Raw)
		}
		want(t, call(t, "POST", E+"/v2beta/db/", key, `{"name": "unknown_ok", "whatever": [1,2]}`), 201, "")
		r = call(t, "POST", E+"/v2beta/db/", key, `{"is_private": true}`)
		want(t, r, 400, "missing_field")
		if !strings.Contains(r.str("error"), `"name"`) {
			t.Fatalf("missing_field does not name the field: %s", r.Raw)
		}
		want(t, call(t, "POST", E+"/v2beta/db/", key, []byte("{\"name\": \"\xff\xfe\"}")), 400, "invalid_utf8")
		want(t, call(t, "POST", E+"/v2beta/db/", key, `{"name": 5}`), 400, "invalid_field")
		big := []byte(`{"name": "` + strings.Repeat("a", 17<<20) + `"}`)
		want(t, call(t, "POST", E+"/v2beta/db/", key, big), 413, "body_too_large")
		want(t, call(t, "GET", E+"/v2beta/db/"+user+"/missing", key, nil), 404, "not_found")
		want(t, call(t, "GET", E+"/v2beta/db/", "v2_notARealKey", nil), 401, "unauthorized")
		r = call(t, "GET", E+"/v2beta/db/", "", nil)
		want(t, r, 401, "unauthorized")
		req, _ := http.NewRequestWithContext(t.Context(), "GET", E+"/v2beta/db/", nil)
		req.Header.Set("Authorization", "Basic Zm9vOmJhcg==")
		res, err := httpClient.Do(req)
		if err != nil || res.StatusCode != 401 {
			t.Fatalf("Basic auth: %v %v", res.StatusCode, err)
		}
		res.Body.Close()
	})

	t.Run("identity", func(t *testing.T) {
		t.Parallel()
		ckey := s.NewUser(t, "carol", "carol-pass-1")
		r := call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "carol", "password": "carol-pass-1"})
		want(t, r, 200, "")
		tok := r.str("access_token")
		if r.str("token_type") != "Bearer" || tok == "" || r.Body["expires_in"].(float64) != 3600 {
			t.Fatalf("login answer %s", r.Raw)
		}
		r = call(t, "GET", E+"/iam/v2/account", tok, nil)
		want(t, r, 200, "")
		acc, _ := r.Body["account"].(map[string]any)
		if acc["name"] != "carol" || acc["id"] == "" {
			t.Fatalf("account: %s", r.Raw)
		}
		r = call(t, "GET", E+"/iam/v2/accounts:getIdByName?account_name=carol", ckey, nil)
		want(t, r, 200, "")
		if r.str("account_id") != acc["id"] {
			t.Fatalf("getIdByName: %s, want %v", r.Raw, acc["id"])
		}
		nm := call(t, "GET", E+"/iam/v2/accounts:getIdByName?account_name="+user, ckey, nil)
		want(t, nm, 404, "not_found")
		un := call(t, "GET", E+"/iam/v2/accounts:getIdByName?account_name=nobody_here", ckey, nil)
		want(t, un, 404, "not_found")
		if strings.Replace(nm.str("error"), user, "X", 1) != strings.Replace(un.str("error"), "nobody_here", "X", 1) {
			t.Fatalf("non-member and unknown differ: %q vs %q", nm.str("error"), un.str("error"))
		}
		wrongPw := call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "carol", "password": "nope"})
		want(t, wrongPw, 401, "invalid_credentials")
		noUser := call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "nobody_x", "password": "nope"})
		want(t, noUser, 401, "invalid_credentials")
		if wrongPw.str("error") != noUser.str("error") {
			t.Fatalf("login errors hint which part was wrong: %q vs %q", wrongPw.str("error"), noUser.str("error"))
		}
		want(t, call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "carol"}), 400, "missing_field")
		// logout revokes the token on the next request
		want(t, call(t, "DELETE", E+"/auth/v1/token", tok, nil), 200, "")
		r = call(t, "GET", E+"/v2beta/db/", tok, nil)
		want(t, r, 401, "unauthorized")
		if strings.Contains(string(r.Raw), tok) {
			t.Fatal("401 echoes the token")
		}
		want(t, call(t, "DELETE", E+"/auth/v1/token", ckey, nil), 400, "not_a_token")
	})

	t.Run("login rate limit", func(t *testing.T) {
		t.Parallel()
		s.NewUser(t, "dave", "dave-pass-1")
		var r resp
		for i := 0; i < 10; i++ {
			r = call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "dave", "password": "wrong"})
			if r.Status == 429 {
				break
			}
			want(t, r, 401, "invalid_credentials")
		}
		want(t, r, 429, "rate_limited")
		if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After = %q", ra)
		}
		// even the right password is refused while limited
		want(t, call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "dave", "password": "dave-pass-1"}), 429, "rate_limited")
	})

	t.Run("keys and service accounts", func(t *testing.T) {
		t.Parallel()
		ekey := s.NewUser(t, "erin", "")
		k1 := call(t, "POST", E+"/v2beta/api-key/", ekey, nil).str("api_key")
		k2 := call(t, "POST", E+"/v2beta/api-key/", ekey, nil).str("api_key")
		want(t, call(t, "GET", E+"/v2beta/db/", k1, nil), 200, "")
		want(t, call(t, "DELETE", E+"/v2beta/api-key/", k1, nil), 200, "") // revoke all
		for _, k := range []string{ekey, k1, k2} {
			want(t, call(t, "GET", E+"/v2beta/db/", k, nil), 401, "unauthorized")
		}
		ekey = strings.TrimSpace(s.Admin(t, "key", "create", "erin"))
		want(t, call(t, "POST", E+"/v2beta/db/", ekey, map[string]any{"name": "sa_db"}), 201, "")
		want(t, call(t, "POST", E+"/v2beta/db/", ekey, map[string]any{"name": "not_sa_db"}), 201, "")
		r := call(t, "POST", E+"/v2beta/service-account/", ekey, map[string]any{"name": "robot", "role": "WRITER", "databases": []string{"erin/sa_db"}})
		want(t, r, 201, "")
		id := r.str("id")
		dbs, _ := r.Body["databases"].([]any)
		if r.str("role") != "WRITER" || len(dbs) != 1 || dbs[0].(map[string]any)["name"] != "erin/sa_db" || r.Body["token_count"].(float64) != 0 {
			t.Fatalf("service account: %s", r.Raw)
		}
		r = call(t, "POST", E+"/v2beta/service-account/"+id+"/api-key/", ekey, nil)
		want(t, r, 200, "")
		sakey := r.str("api_key")
		if r.str("username") != "robot" {
			t.Fatalf("sa key answer %s", r.Raw)
		}
		r = call(t, "GET", E+"/v2beta/service-account/"+id, ekey, nil)
		want(t, r, 200, "")
		if r.Body["token_count"].(float64) != 1 || r.Body["active_token_count"].(float64) != 1 {
			t.Fatalf("counts: %s", r.Raw)
		}
		r = call(t, "GET", E+"/v2beta/db/", sakey, nil)
		want(t, r, 200, "")
		if l, _ := r.Body["databases"].([]any); len(l) != 1 {
			t.Fatalf("service account sees %s", r.Raw)
		}
		r = call(t, "GET", E+"/v2beta/db/erin/sa_db", sakey, nil)
		want(t, r, 200, "")
		if r.str("role") != "WRITER" {
			t.Fatalf("sa role %s", r.Raw)
		}
		want(t, call(t, "GET", E+"/v2beta/db/erin/not_sa_db", sakey, nil), 404, "not_found")
		want(t, call(t, "POST", E+"/v2beta/api-key/", sakey, nil), 403, "forbidden")
		want(t, call(t, "GET", E+"/v2beta/service-account/", sakey, nil), 403, "forbidden")
		want(t, call(t, "POST", E+"/v2beta/db/", sakey, map[string]any{"name": "nope"}), 403, "forbidden")
		want(t, call(t, "POST", E+"/auth/v1/login", sakey, map[string]any{"username": "erin", "password": "x"}), 403, "forbidden")
		// another user cannot see or use erin's service account (IDOR)
		fkey := s.NewUser(t, "frank", "")
		want(t, call(t, "GET", E+"/v2beta/service-account/"+id, fkey, nil), 404, "not_found")
		want(t, call(t, "POST", E+"/v2beta/service-account/"+id+"/api-key/", fkey, nil), 404, "not_found")
		want(t, call(t, "DELETE", E+"/v2beta/service-account/"+id+"/api-key/", fkey, nil), 404, "not_found")
		if l, _ := call(t, "GET", E+"/v2beta/service-account/", fkey, nil).Body["service_accounts"].([]any); len(l) != 0 {
			t.Fatal("frank lists erin's service accounts")
		}
		want(t, call(t, "DELETE", E+"/v2beta/service-account/"+id+"/api-key/", ekey, nil), 200, "")
		want(t, call(t, "GET", E+"/v2beta/db/", sakey, nil), 401, "unauthorized")
		want(t, call(t, "POST", E+"/v2beta/service-account/", ekey, map[string]any{"name": "r2", "databases": []string{"erin/nope"}}), 404, "not_found")
		want(t, call(t, "POST", E+"/v2beta/service-account/", ekey, map[string]any{"name": "r3", "role": "GOD"}), 400, "invalid_field")
	})

	t.Run("admin passwd and key revoke", func(t *testing.T) {
		t.Parallel()
		k := s.NewUser(t, "pat", "first-pass")
		s.Admin(t, "user", "passwd", "pat", "--password", "second-pass")
		want(t, call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "pat", "password": "first-pass"}), 401, "invalid_credentials")
		want(t, call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "pat", "password": "second-pass"}), 200, "")
		want(t, call(t, "GET", E+"/v2beta/db/", k, nil), 200, "")
		if out := s.Admin(t, "key", "revoke", k); !strings.Contains(out, `"revoked":true`) {
			t.Fatalf("key revoke printed %q", out)
		}
		// bitd admin is another process: bitd drops its cached key when
		// the revoke's notification arrives (docs/bitd.md, "Access cache").
		eventually(t, "key revoked by bitd admin refused", func() bool { return call(t, "GET", E+"/v2beta/db/", k, nil).Status == 401 })
		want(t, call(t, "GET", E+"/v2beta/db/", k, nil), 401, "unauthorized")
		if _, err := s.AdminE(t.Context(), "user", "create", "pat"); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("duplicate user create: %v", err)
		}
	})

	t.Run("query wiring and usage", func(t *testing.T) {
		t.Parallel()
		want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "usage_db"}), 201, "")
		for _, slash := range []string{"", "/"} {
			r := call(t, "POST", E+"/v2beta/query"+slash, key, map[string]any{"database_name": user + "/usage_db", "query_string": "SELECT generate_series(1, 3) AS n"})
			want(t, r, 200, "")
			if rows, _ := r.Body["data"].([]any); len(rows) != 3 {
				t.Fatalf("query answer %s", r.Raw)
			}
		}
		r := call(t, "POST", E+"/v2beta/query/batch/", key, map[string]any{"database_name": user + "/usage_db",
			"queries": []map[string]any{{"query_string": "SELECT 1"}}})
		want(t, r, 200, "")
		testwait.Eventually(t, 30*time.Second, func() error {
			r = call(t, "GET", E+"/v2beta/db/"+user+"/usage_db", key, nil)
			uc, _ := r.Body["usage_current"].(map[string]any)
			if n, _ := uc["rows_queried"].(float64); n < 6 {
				return fmt.Errorf("rows_queried never reached 6: %s", r.Raw)
			}
			return nil
		})
		want(t, call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": user + "/nope_db", "query_string": "SELECT 1"}), 404, "not_found")
		r = call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": user + "/usage_db", "query_string": "SELECT 1 /* " + strings.Repeat("x", 10<<20) + " */"})
		want(t, r, 200, "")
		r = call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": user + "/usage_db", "query_string": strings.Repeat("x", 17<<20)})
		if r.Status != 413 || r.str("code") == "" {
			t.Fatalf("17 MiB query: %d %.200s", r.Status, r.Raw)
		}
	})

	t.Run("wire proxy credentials", func(t *testing.T) {
		t.Parallel()
		wkey := s.NewUser(t, "wendy", "wendy-pass-1")
		want(t, call(t, "POST", E+"/v2beta/db/", wkey, map[string]any{"name": "wire_db"}), 201, "")
		tok := call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": "wendy", "password": "wendy-pass-1"}).str("access_token")
		ct := wireConn(t, s, tok, "wendy/wire_db")
		var role string
		if err := ct.QueryRow(t.Context(), "SELECT current_user").Scan(&role); err != nil || !strings.HasSuffix(role, "_owner") {
			t.Fatalf("token session role %q, %v", role, err)
		}
		k2 := call(t, "POST", E+"/v2beta/api-key/", wkey, nil).str("api_key")
		ck := wireConn(t, s, k2, "wendy/wire_db")
		if _, err := ck.Exec(t.Context(), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		want(t, call(t, "DELETE", E+"/v2beta/api-key/?api_key="+k2, wkey, nil), 200, "")
		want(t, call(t, "DELETE", E+"/auth/v1/token", tok, nil), 200, "")
		for name, c := range map[string]*pgx.Conn{"key": ck, "token": ct} {
			testwait.Eventually(t, 20*time.Second, func() error {
				if _, err := c.Exec(t.Context(), "SELECT 1"); err == nil {
					return fmt.Errorf("the %s session survived its revocation", name)
				}
				return nil
			})
		}
	})

	t.Run("organisations", func(t *testing.T) {
		t.Parallel()
		gkey := s.NewUser(t, "gina", "")
		hkey := s.NewUser(t, "hank", "")
		ikey := s.NewUser(t, "ivy", "")
		s.Admin(t, "account", "create", "acme_org", "--owner", "gina")
		s.Admin(t, "account", "add-member", "acme_org", "hank", "--role", "READER")
		r := call(t, "POST", E+"/v2beta/db/", gkey, map[string]any{"name": "shared", "account": "acme_org"})
		want(t, r, 201, "")
		if r.str("name") != "acme_org/shared" {
			t.Fatalf("org database: %s", r.Raw)
		}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", E+"/v2beta/db/", strings.NewReader(`{"name":"via_header"}`))
		req.Header.Set("Authorization", "Bearer "+gkey)
		req.Header.Set("X-Bitkit-Account", "acme_org")
		res, err := httpClient.Do(req)
		if err != nil || res.StatusCode != 201 {
			t.Fatalf("create via X-Bitkit-Account: %v %v", res.StatusCode, err)
		}
		res.Body.Close()
		want(t, call(t, "POST", E+"/v2beta/db/", hkey, map[string]any{"name": "x", "account": "acme_org"}), 403, "forbidden")
		want(t, call(t, "POST", E+"/v2beta/db/", ikey, map[string]any{"name": "x", "account": "acme_org"}), 404, "not_found")
		r = call(t, "GET", E+"/v2beta/db/acme_org/shared", hkey, nil)
		want(t, r, 200, "")
		if r.str("role") != "READER" {
			t.Fatalf("member role: %s", r.Raw)
		}
		want(t, call(t, "GET", E+"/v2beta/db/acme_org/shared", ikey, nil), 404, "not_found")
		want(t, call(t, "GET", E+"/iam/v2/accounts:getIdByName?account_name=acme_org", hkey, nil), 200, "")
		want(t, call(t, "GET", E+"/iam/v2/accounts:getIdByName?account_name=acme_org", ikey, nil), 404, "not_found")
	})
}

// TestTokenExpiry checks --token-ttl: a token works, then expires.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--token-ttl", "2s"))
	s.NewUser(t, "tina", "tina-pass-1")
	r := call(t, "POST", s.Endpoint+"/auth/v1/login", "", map[string]any{"username": "tina", "password": "tina-pass-1"})
	want(t, r, 200, "")
	if r.Body["expires_in"].(float64) != 2 {
		t.Fatalf("expires_in = %v, want 2", r.Body["expires_in"])
	}
	tok := r.str("access_token")
	want(t, call(t, "GET", s.Endpoint+"/iam/v2/account", tok, nil), 200, "")
	testwait.Eventually(t, 30*time.Second, func() error {
		r = call(t, "GET", s.Endpoint+"/iam/v2/account", tok, nil)
		if r.Status == 401 {
			return nil
		}
		want(t, r, 200, "")
		return errors.New("token never expired")
	})
	want(t, r, 401, "unauthorized")
	if !strings.Contains(r.str("error"), "expired") {
		t.Fatalf("expired-token message: %s", r.Raw)
	}
}

// dsnPassword is the password of TEST_DATABASE_URL.
func dsnPassword(t *testing.T) string {
	u, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := u.User.Password()
	if p == "" {
		return "no password in the test DSN"
	}
	return p
}
