package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// The fuzz targets here send arbitrary bytes to a real bitd over HTTP (one
// bitd per target and fuzz worker). Seed corpora live in
// testdata/fuzz/<Target>/ and run as plain tests in `go test`; scripts/fuzz.sh
// fuzzes each target for FUZZTIME in `make test`. Invariants of every answer:
// never a 5xx, a 4xx always carries a JSON body with error and code, 429/503
// carry Retry-After, and the server still answers a plain request afterwards.

// fuzzServer starts the bitd of a fuzz target (short statement timeout, so a
// fuzzed query cannot stall the run) and a database it owns. The coordinator
// of a -fuzz run gets nils: only its workers run inputs.
func fuzzServer(f *testing.F) (*bitdtest.Server, *client, string) {
	f.Helper()
	if fuzzCoordinator() {
		return nil, nil, ""
	}
	s := start(f, bitdtest.Args("--statement-timeout", "2s"))
	f.Cleanup(func() { scanLogs(f, s) })
	c := newClient(s.Endpoint, s.APIKey)
	c.hc.Timeout = 30 * time.Second
	db := c.createDB(f, "fuzz", true)
	c.mustQuery(f, db, "create table t (id int primary key, v text); insert into t values (1, 'one')")
	return s, c, db
}

// checkAnswer enforces the invariants on one raw answer.
func checkAnswer(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode >= 500 {
		t.Fatalf("%s: server error %d: %.500s", what, resp.StatusCode, body)
	}
	if resp.StatusCode < 400 {
		return
	}
	if (resp.StatusCode == 429 || resp.StatusCode == 503) && resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d without Retry-After", what, resp.StatusCode)
	}
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &e) != nil || e.Error == "" || e.Code == "" {
		t.Fatalf("%s: %d answer is not a JSON error with error and code (Content-Type %q): %.500s", what, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// send issues one raw request and checks the answer; a transport error fails
// the test (the server must answer every request).
func send(t *testing.T, c *client, method, rawURL string, body []byte, hdr ...string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		return // not a request a client could send at all
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: no answer: %v", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, req.URL.Path, err)
	}
	checkAnswer(t, method+" "+req.URL.Path, resp, b)
}

// healthy fails the test unless the server still answers a plain query.
func healthy(t *testing.T, c *client, db string) {
	t.Helper()
	r, err := c.doE("POST", "/v2beta/query", map[string]any{"database_name": db, "query_string": "select v from t where id = 1"})
	if err != nil || r.Status != 200 || !bytes.Contains(r.Raw, []byte(`"one"`)) {
		t.Fatalf("server unhealthy after the fuzzed request: %v %d %.300s", err, r.Status, r.Raw)
	}
}

// FuzzQueryBody sends arbitrary bytes as the body of POST /v2beta/query
// (buffered and streamed) and of POST /v2beta/query/batch.
func FuzzQueryBody(f *testing.F) {
	for _, seed := range []string{
		`{"database_name":"DB","query_string":"select 1"}`,
		`{"database_name":"DB","query_string":"select $1::int","params":[1]}`,
		`{"database_name":"DB","query_string":"select * from t","timeout_ms":-1}`,
		`{"database_name":"DB","queries":[{"query_string":"select 1"},{"query_string":"select 2"}],"read_only":true}`,
		`{"database_name":"DB","queries":[{"query_string":"insert into t values (2,'x')"},{"query_string":"select 1/0"}]}`,
		`{"database_name":"nobody/nothing","query_string":"select 1"}`,
		`{"database_name":"DB","query_string":"select 1","params":{"a":1}}`,
		`{"database_name":"DB","query_string":"select 1","params":[1e400]}`,
		`{}`, `[]`, `null`, ``, `{"database_name":`, "\xff\xfe", `{"database_name":"DB","query_string":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	s, c, db := fuzzServer(f)
	_ = s
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte(`"DB"`), []byte(fmt.Sprintf("%q", db)))
		send(t, c, "POST", c.endpoint+"/v2beta/query", body)
		send(t, c, "POST", c.endpoint+"/v2beta/query", body, "Accept", "application/x-ndjson")
		send(t, c, "POST", c.endpoint+"/v2beta/query/batch", body)
		healthy(t, c, db)
	})
	record(f, "fuzz: arbitrary bytes as the body of POST /query (buffered, streamed) and /query/batch", "no 5xx; every 4xx a JSON error with code; server healthy after each")
}

// jsonString writes s as a JSON string literal byte for byte: invalid UTF-8
// is sent as is (encoding/json would replace it).
func jsonString(s string) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch < 0x20:
			fmt.Fprintf(&b, `\u%04x`, ch)
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}

// FuzzDatabaseName creates, reads, patches and deletes databases with
// arbitrary names: invalid UTF-8, huge names, path tricks.
func FuzzDatabaseName(f *testing.F) {
	for _, seed := range []string{
		"ok", "..", "../../etc", "..%2f..%2fadmin", "%2e%2e", "a/b", "a%2Fb", "\xff\xfe", "\x00", "名前",
		strings.Repeat("x", 64), strings.Repeat("y", 70000), "Robert'); DROP TABLE users;--", `a"b`, "a\\b", " ", "pg_catalog",
		"template1", "postgres", "-leading", "trailing-", "UPPER",
	} {
		f.Add(seed)
	}
	s, c, db := fuzzServer(f)
	f.Fuzz(func(t *testing.T, name string) {
		create := append(append([]byte(`{"name":`), jsonString(name)...), []byte(`,"is_private":true}`)...)
		req, _ := http.NewRequest("POST", c.endpoint+"/v2beta/db/", bytes.NewReader(create))
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatalf("POST /db/: no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkAnswer(t, "POST /db/", resp, b)
		if resp.StatusCode < 300 {
			// Created: it must be reachable under the name the server gave it,
			// and it is removed again.
			var d struct{ Name string }
			if json.Unmarshal(b, &d) != nil || d.Name == "" {
				t.Fatalf("created database answer has no name: %.300s", b)
			}
			if r, err := c.doE("DELETE", "/v2beta/db/"+d.Name, nil); err != nil || r.Status != 200 {
				t.Fatalf("cannot delete the database %q just created: %v %d %.300s", d.Name, err, r.Status, r.Raw)
			}
		}
		for _, p := range []string{
			c.endpoint + "/v2beta/db/" + s.User + "/" + name,
			c.endpoint + "/v2beta/db/" + s.User + "/" + url.PathEscape(name),
			c.endpoint + "/v2beta/db/" + url.PathEscape(name) + "/" + url.PathEscape(name),
		} {
			send(t, c, "GET", p, nil)
			send(t, c, "PATCH", p, append(append([]byte(`{"name":`), jsonString(name)...), '}'))
		}
		send(t, c, "POST", c.endpoint+"/v2beta/query", append(append([]byte(`{"query_string":"select 1","database_name":`), jsonString(name)...), '}'))
		healthy(t, c, db)
	})
	record(f, "fuzz: database create/get/patch/delete/query with arbitrary names (invalid UTF-8, 70 kB, ../ and %2f tricks)", "no 5xx; every 4xx a JSON error with code; server healthy after each")
}

// FuzzLoginBody sends arbitrary bytes to POST /auth/v1/login.
func FuzzLoginBody(f *testing.F) {
	for _, seed := range []string{
		`{"username":"USER","password":"PASS"}`, `{"username":"USER","password":"wrong"}`, `{"username":"","password":""}`,
		`{"username":"USER"}`, `{"username":1,"password":[]}`, `{"username":"\u0000","password":"\ud800"}`, `{}`, ``, `[`, "\xff",
		`{"username":"USER","password":"PASS","extra":{"a":[1,2,3]}}`,
	} {
		f.Add([]byte(seed))
	}
	s, c, db := fuzzServer(f)
	user, pass := "fuzzer"+randSuffix(), "pw-"+randSuffix()+randSuffix()
	var anon *client
	if s != nil {
		s.NewUser(f, user, pass)
		remember(pass)
		anon = newClient(s.Endpoint, "")
		anon.hc.Timeout = 30 * time.Second
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("USER"), []byte(user))
		body = bytes.ReplaceAll(body, []byte("PASS"), []byte(pass))
		req, _ := http.NewRequest("POST", s.Endpoint+"/auth/v1/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := anon.hc.Do(req)
		if err != nil {
			t.Fatalf("POST /auth/v1/login: no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkAnswer(t, "POST /auth/v1/login", resp, b)
		if resp.StatusCode == 200 {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
				t.Fatalf("login 200 without access_token: %.300s", b)
			}
			remember(tok.AccessToken)
		}
		if bytes.Contains(b, []byte(pass)) {
			t.Fatalf("the password was echoed in the answer")
		}
		healthy(t, c, db)
	})
	record(f, "fuzz: arbitrary bytes as the body of POST /auth/v1/login", "no 5xx; every 4xx a JSON error with code; password never echoed")
}
