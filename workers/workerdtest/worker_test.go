//go:build !js

package workerdtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/workers/workerdtest"
)

type answer struct {
	status int
	body   []byte
	m      map[string]any
}

// post sends body to url as JSON, with auth as the Authorization header
// unless it is "".
func post(t *testing.T, url, auth, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, body: b}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %s)", ct, b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&a.m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, b)
	}
	return a
}

// setupDB creates a database with a table on bitd and returns its full name.
func setupDB(t *testing.T, s *bitdtest.Server) string {
	t.Helper()
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	db, err := c.CreateDatabase(t.Context(), core.CreateDatabaseRequest{Name: bitdtest.UniqueName("wk")})
	if err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	if _, err := c.Query(t.Context(), db.Name, "create table pets (id int8 primary key, name text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(t.Context(), db.Name, "insert into pets values (9223372036854775807, 'rex'), (2, 'tom')"); err != nil {
		t.Fatal(err)
	}
	return db.Name
}

// TestWorkerInWorkerd runs the real Worker bundle in workerd against a real
// bitd: results, SQL errors, bad input, a missing secret, both kinds of
// timeout (bitd cancelling a slow statement, and an upstream that never
// answers, which only the aborted fetch can end), and the caller check:
// every Worker that runs SQL here has BITKIT_WORKER_TOKEN set and is sent the
// bearer token, except the one opened with BITKIT_WORKER_PUBLIC; a request
// without the token is refused, and so is every query to a Worker configured
// as before (no token, no BITKIT_WORKER_PUBLIC).
func TestWorkerInWorkerd(t *testing.T) {
	s := bitdtest.Start(t)
	db := setupDB(t, s)

	// An upstream that accepts requests and does not answer until the test
	// ends: only the Worker's own deadline (the aborted fetch) can answer.
	reached := make(chan struct{}, 8)
	release := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stall.Close)
	t.Cleanup(func() { close(release) }) // runs before stall.Close

	token := workerdtest.NewToken(t)
	bearer := "Bearer " + token
	tokenBinding := workerdtest.Binding{Name: "BITKIT_WORKER_TOKEN", Value: token}
	main := workerdtest.Start(t,
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: s.Endpoint},
		workerdtest.Binding{Name: "BITKIT_API_KEY", Value: s.APIKey},
		workerdtest.Binding{Name: "BITKIT_TIMEOUT_MS", Value: "30000"},
		tokenBinding,
	)
	// A short limit only where the test wants it reached, so that a loaded
	// machine does not turn the other cases into timeouts.
	short := workerdtest.Start(t,
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: s.Endpoint},
		workerdtest.Binding{Name: "BITKIT_API_KEY", Value: s.APIKey},
		workerdtest.Binding{Name: "BITKIT_TIMEOUT_MS", Value: "1500"},
		tokenBinding,
	)
	noSecret := workerdtest.Start(t, workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: s.Endpoint}, tokenBinding)
	stalled := workerdtest.Start(t,
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: stall.URL},
		workerdtest.Binding{Name: "BITKIT_API_KEY", Value: s.APIKey},
		workerdtest.Binding{Name: "BITKIT_TIMEOUT_MS", Value: "1000"},
		tokenBinding,
	)
	// The configuration that used to serve anyone: no caller token, no opt-in.
	unguarded := workerdtest.Start(t,
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: s.Endpoint},
		workerdtest.Binding{Name: "BITKIT_API_KEY", Value: s.APIKey},
	)
	// The deliberate opt-in for anonymous callers.
	public := workerdtest.Start(t,
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: s.Endpoint},
		workerdtest.Binding{Name: "BITKIT_API_KEY", Value: s.APIKey},
		workerdtest.Binding{Name: "BITKIT_WORKER_PUBLIC", Value: "true"},
	)

	q := func(sql string, extra string) string {
		b, _ := json.Marshal(sql)
		return `{"database":"` + db + `","query":` + string(b) + extra + `}`
	}
	tests := []struct {
		name   string
		url    string
		auth   string
		body   string
		status int
		check  func(t *testing.T, a answer)
	}{
		{"rows keep int8 exact", main.URL + "/query", bearer, q("select id, name from pets where id > $1 order by id", `,"params":[100]`), 200,
			func(t *testing.T, a answer) {
				if !bytes.Contains(a.body, []byte(`"data":[[9223372036854775807,"rex"]]`)) {
					t.Errorf("data not exact rows: %s", a.body)
				}
				if a.m["row_count"] != json.Number("1") {
					t.Errorf("row_count = %v", a.m["row_count"])
				}
				md, _ := a.m["metadata"].(map[string]any)
				cols, _ := a.m["columns"].([]any)
				if len(cols) != 2 || md["id"] == nil || md["name"] != "text" || cols[0].(map[string]any)["type"] != md["id"] {
					t.Errorf("metadata = %v, columns = %v", a.m["metadata"], a.m["columns"])
				}
				if a.m["query_string"] == "" {
					t.Errorf("no query_string: %s", a.body)
				}
			}},
		{"objects in column order", main.URL + "/query", bearer, q("select name, id from pets order by id", `,"data_format":"objects"`), 200,
			func(t *testing.T, a answer) {
				if !bytes.Contains(a.body, []byte(`"data":[{"name":"tom","id":2},{"name":"rex","id":9223372036854775807}]`)) {
					t.Errorf("data not objects in column order: %s", a.body)
				}
			}},
		{"SQL error", main.URL + "/query", bearer, q("select * from no_such_table", ""), 400,
			func(t *testing.T, a answer) {
				if a.m["sqlstate"] != "42P01" || !strings.Contains(a.m["error"].(string), "no_such_table") {
					t.Errorf("SQL error answer: %s", a.body)
				}
			}},
		{"bad JSON", main.URL + "/query", bearer, `{"database": "x/y", "query": `, 400,
			func(t *testing.T, a answer) {
				if a.m["code"] != "bad_request" {
					t.Errorf("code = %v: %s", a.m["code"], a.body)
				}
			}},
		{"unknown field", main.URL + "/query", bearer, `{"database":"` + db + `","sql":"select 1"}`, 400,
			func(t *testing.T, a answer) {
				if !strings.Contains(a.m["error"].(string), "sql") {
					t.Errorf("error does not name the field: %s", a.body)
				}
			}},
		{"missing secret", noSecret.URL + "/query", bearer, q("select 1", ""), 500,
			func(t *testing.T, a answer) {
				if a.m["code"] != "missing_configuration" || !strings.Contains(a.m["error"].(string), "BITKIT_API_KEY") {
					t.Errorf("missing secret answer: %s", a.body)
				}
			}},
		{"bitd cancels a slow query", short.URL + "/query", bearer, q("select pg_sleep(10)", ""), 504,
			func(t *testing.T, a answer) {
				if a.m["code"] != "timeout" || !strings.Contains(a.m["error"].(string), "BITKIT_TIMEOUT_MS") {
					t.Errorf("timeout answer: %s", a.body)
				}
			}},
		{"stalled upstream is aborted", stalled.URL + "/query", bearer, q("select 1", ""), 504,
			func(t *testing.T, a answer) {
				if a.m["code"] != "timeout" {
					t.Errorf("timeout answer: %s", a.body)
				}
				// The request did reach the upstream, which is still holding it:
				// the 504 came from the Worker's deadline, not from an answer.
				select {
				case <-reached:
				default:
					t.Error("the Worker answered 504 without its request reaching the upstream")
				}
			}},
		{"no caller token is refused", main.URL + "/query", "", q("select 1", ""), 401,
			func(t *testing.T, a answer) {
				if a.m["code"] != "unauthorized" || !strings.Contains(a.m["error"].(string), "BITKIT_WORKER_TOKEN") {
					t.Errorf("401 answer: %s", a.body)
				}
			}},
		{"wrong caller token is refused", main.URL + "/query", bearer + "x", q("select 1", ""), 401,
			func(t *testing.T, a answer) {
				if a.m["code"] != "unauthorized" {
					t.Errorf("401 answer: %s", a.body)
				}
			}},
		{"no token configured refuses queries", unguarded.URL + "/query", "", q("select 1", ""), 500,
			func(t *testing.T, a answer) {
				msg, _ := a.m["error"].(string)
				if a.m["code"] != "worker_token_missing" || !strings.Contains(msg, "wrangler secret put BITKIT_WORKER_TOKEN") ||
					!strings.Contains(msg, `BITKIT_WORKER_PUBLIC = "true"`) {
					t.Errorf("worker_token_missing answer: %s", a.body)
				}
			}},
		{"public opt-in serves anonymous callers", public.URL + "/query", "", q("select name from pets order by id", ""), 200,
			func(t *testing.T, a answer) {
				if !bytes.Contains(a.body, []byte(`"data":[["tom"],["rex"]]`)) {
					t.Errorf("data: %s", a.body)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := post(t, tc.url, tc.auth, tc.body)
			if a.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", a.status, tc.status, a.body)
			}
			if strings.Contains(string(a.body), s.APIKey) || strings.Contains(string(a.body), token) {
				t.Fatalf("the answer contains the API key or the caller token")
			}
			tc.check(t, a)
		})
	}
	t.Run("healthz and routes", func(t *testing.T) {
		t.Parallel()
		// No bearer token: GET /healthz stays open.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, main.URL+"/healthz", nil)
		if a := do(t, req); a.status != 200 || a.m["status"] != "ok" {
			t.Errorf("healthz: %d %s", a.status, a.body)
		}
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, main.URL+"/query", nil)
		if a := do(t, req); a.status != 405 || a.m["code"] != "method_not_allowed" {
			t.Errorf("GET /query: %d %s", a.status, a.body)
		}
	})
	t.Cleanup(func() {
		for _, w := range []*workerdtest.Worker{main, short, noSecret, stalled, unguarded, public} {
			if strings.Contains(w.Logs(), s.APIKey) || strings.Contains(w.Logs(), token) {
				t.Errorf("workerd's log contains the API key or the caller token")
			}
		}
	})
}

// TestBundleUsesStockGlue checks that the bundle ships syumai's wasm_exec.js
// as generated: the "Illegal invocation" fix lives in jsfetch, so a
// developer's own Worker on core needs no patched glue (TestWorkerInWorkerd
// runs queries, timeouts included, through it).
func TestBundleUsesStockGlue(t *testing.T) {
	t.Parallel()
	dir := workerdtest.Build(t)
	b, err := os.ReadFile(filepath.Join(dir, "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "bitkit:") || !strings.Contains(string(b), "Reflect.get(target, prop, target)") {
		t.Fatal("wasm_exec.js is not syumai's generated file")
	}
}

// TestBundleSize keeps app.wasm under Cloudflare's 3 MiB gzipped limit of
// the free plan (the JS glue adds about 7 KB).
func TestBundleSize(t *testing.T) {
	t.Parallel()
	raw, gz, err := workerdtest.BundleSize(workerdtest.Build(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("app.wasm: %d bytes, %d gzipped", raw, gz)
	if gz >= workerdtest.SizeLimit {
		t.Fatalf("the bundle is %d bytes gzipped, at or above the %d-byte free-plan limit: keep goccy/go-json and other heavy packages out of the js build", gz, workerdtest.SizeLimit)
	}
}
