package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/lambda/lambdatest"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// bootstrapBinary builds this package the way `make lambda` does (for the
// host's GOARCH) once per test process.
func bootstrapBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bitkit-lambda-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "bootstrap")
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", buildPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build bootstrap: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// function is a running bootstrap process behind a local Runtime API.
type function struct {
	api     *lambdatest.Server
	spawned time.Time
	out     *bytes.Buffer
	mu      sync.Mutex
}

func (f *function) logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

type lockedWriter struct{ f *function }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.f.out.Write(p)
}

// startFunction runs the real bootstrap binary with env (KEY=VALUE) plus
// AWS_LAMBDA_RUNTIME_API, in its own process group, killed in t.Cleanup.
func startFunction(t testing.TB, env ...string) *function {
	t.Helper()
	bin := bootstrapBinary(t)
	api, err := lambdatest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	f := &function{api: api, out: &bytes.Buffer{}}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{
		"AWS_LAMBDA_RUNTIME_API=" + api.Addr(),
		"AWS_LAMBDA_FUNCTION_NAME=bitkit-local",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_REGION=us-east-1",
		"TZ=UTC",
	}, env...)
	cmd.Stdout = lockedWriter{f}
	cmd.Stderr = lockedWriter{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	f.spawned = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting bootstrap: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	select {
	case <-api.FirstNext():
	case <-api.InitError():
		t.Fatalf("bootstrap reported an init error: %v\n%s", api.InitErr(), f.logs())
	case <-exited:
		t.Fatalf("bootstrap exited before polling for events:\n%s", f.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("bootstrap did not poll /next within 30s:\n%s", f.logs())
	}
	return f
}

// invoke sends payload with the given deadline and returns the result.
func (f *function) invoke(t testing.TB, payload []byte, timeout time.Duration) lambdatest.Result {
	t.Helper()
	ctx := t.Context()
	r, err := f.api.Invoke(ctx, payload, timeout)
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, f.logs())
	}
	return r
}

func httpEvent(t testing.TB, method, path, body string, b64 bool) []byte {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "$default",
		RawPath:  path,
		Headers:  map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "ctx-1",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "127.0.0.1"},
		},
		Body:            body,
		IsBase64Encoded: b64,
	}
	if b64 {
		ev.Body = base64.StdEncoding.EncodeToString([]byte(body))
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpAnswer decodes the function's API Gateway v2 response and its JSON body.
func httpAnswer(t testing.TB, r lambdatest.Result) (int, map[string]any, string) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("function error %s: %s", r.Err.ErrorType, r.Err.ErrorMessage)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(r.Payload, &resp); err != nil {
		t.Fatalf("not an API Gateway v2 response: %v: %s", err, r.Payload)
	}
	if resp.Headers["Content-Type"] != "application/json" {
		t.Errorf("Content-Type = %q", resp.Headers["Content-Type"])
	}
	m := map[string]any{}
	dec := json.NewDecoder(strings.NewReader(resp.Body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, resp.Body)
	}
	return resp.StatusCode, m, resp.Body
}

func setupDB(t testing.TB, endpoint, key string) string {
	t.Helper()
	c, err := core.NewClient(endpoint, core.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	db, err := c.CreateDatabase(t.Context(), core.CreateDatabaseRequest{Name: bitdtest.UniqueName("fn")})
	if err != nil {
		t.Fatalf("creating a database: %v", err)
	}
	for _, sql := range []string{
		"create table pets (id int8 primary key, name text)",
		"insert into pets values (9223372036854775807, 'rex'), (2, 'tom')",
	} {
		if _, err := c.Query(t.Context(), db.Name, sql); err != nil {
			t.Fatal(err)
		}
	}
	return db.Name
}

func queryJSON(db, sql, extra string) string {
	b, _ := json.Marshal(sql)
	return `{"database":"` + db + `","query":` + string(b) + extra + `}`
}

// TestBootstrap runs the real bootstrap binary under the local Runtime API
// against a real bitd, with HTTP (Function URL) and direct-invoke events.
func TestBootstrap(t *testing.T) {
	s := bitdtest.Start(t)
	db := setupDB(t, s.Endpoint, s.APIKey)
	fn := startFunction(t, "BITKIT_ENDPOINT="+s.Endpoint, "BITKIT_API_KEY="+s.APIKey)
	noCreds := startFunction(t, "BITKIT_ENDPOINT="+s.Endpoint)
	noEndpoint := startFunction(t, "BITKIT_API_KEY="+s.APIKey)

	const exact = `[[9223372036854775807,"rex"]]`
	sel := queryJSON(db, "select id, name from pets where id > $1 order by id", `,"params":[100]`)
	httpCases := []struct {
		name    string
		fn      *function
		event   []byte
		timeout time.Duration
		status  int
		check   func(t *testing.T, m map[string]any, body string)
	}{
		{"POST query", fn, httpEvent(t, "POST", "/query", sel, false), 10 * time.Second, 200,
			func(t *testing.T, m map[string]any, body string) {
				if !strings.Contains(body, `"data":`+exact) || m["row_count"] != json.Number("1") {
					t.Errorf("result: %s", body)
				}
			}},
		{"base64 body", fn, httpEvent(t, "POST", "/", sel, true), 10 * time.Second, 200,
			func(t *testing.T, m map[string]any, body string) {
				if !strings.Contains(body, `"data":`+exact) {
					t.Errorf("result: %s", body)
				}
			}},
		{"objects", fn, httpEvent(t, "POST", "/", queryJSON(db, "select name, id from pets order by id", `,"data_format":"objects"`), false), 10 * time.Second, 200,
			func(t *testing.T, m map[string]any, body string) {
				if !strings.Contains(body, `"data":[{"name":"tom","id":2},{"name":"rex","id":9223372036854775807}]`) {
					t.Errorf("result: %s", body)
				}
			}},
		{"SQL error", fn, httpEvent(t, "POST", "/", queryJSON(db, "select * from no_such_table", ""), false), 10 * time.Second, 400,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "sql_error" || m["sqlstate"] != "42P01" || !strings.Contains(body, "no_such_table") {
					t.Errorf("SQL error: %s", body)
				}
			}},
		{"bad JSON body", fn, httpEvent(t, "POST", "/", `{"database":`, false), 10 * time.Second, 400,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "bad_request" {
					t.Errorf("bad JSON: %s", body)
				}
			}},
		{"missing query", fn, httpEvent(t, "POST", "/", `{"database":"`+db+`"}`, false), 10 * time.Second, 400,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "bad_request" || !strings.Contains(body, `\"query\" is missing`) {
					t.Errorf("missing query: %s", body)
				}
			}},
		{"bad base64", fn, append([]byte(nil), bytes.Replace(httpEvent(t, "POST", "/", "x", true), []byte(`"eA=="`), []byte(`"%%%"`), 1)...), 10 * time.Second, 400,
			func(t *testing.T, m map[string]any, body string) {
				if !strings.Contains(body, "base64") {
					t.Errorf("bad base64: %s", body)
				}
			}},
		{"healthz", fn, httpEvent(t, "GET", "/healthz", "", false), 10 * time.Second, 200,
			func(t *testing.T, m map[string]any, body string) {
				if m["status"] != "ok" {
					t.Errorf("healthz: %s", body)
				}
			}},
		{"other method", fn, httpEvent(t, "DELETE", "/query", "", false), 10 * time.Second, 405,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "method_not_allowed" {
					t.Errorf("405: %s", body)
				}
			}},
		{"deadline exceeded", fn, httpEvent(t, "POST", "/", queryJSON(db, "select pg_sleep(10)", ""), false), time.Second, 504,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "timeout" || !strings.Contains(body, "Lambda") {
					t.Errorf("timeout: %s", body)
				}
			}},
		{"missing credentials", noCreds, httpEvent(t, "POST", "/", sel, false), 10 * time.Second, 500,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "missing_configuration" || !strings.Contains(body, "BITKIT_API_KEY") {
					t.Errorf("missing credentials: %s", body)
				}
			}},
		{"missing endpoint", noEndpoint, httpEvent(t, "POST", "/", sel, false), 10 * time.Second, 500,
			func(t *testing.T, m map[string]any, body string) {
				if m["code"] != "missing_configuration" || !strings.Contains(body, "BITKIT_ENDPOINT") {
					t.Errorf("missing endpoint: %s", body)
				}
			}},
	}
	for _, tc := range httpCases {
		t.Run("http/"+tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.fn.invoke(t, tc.event, tc.timeout)
			status, m, body := httpAnswer(t, r)
			if status != tc.status {
				t.Fatalf("status = %d, want %d: %s", status, tc.status, body)
			}
			if strings.Contains(body, s.APIKey) {
				t.Fatal("the answer contains the API key")
			}
			tc.check(t, m, body)
		})
	}

	directCases := []struct {
		name    string
		fn      *function
		payload string
		timeout time.Duration
		errType string // "" for success
		check   func(t *testing.T, r lambdatest.Result)
	}{
		{"query", fn, sel, 10 * time.Second, "", func(t *testing.T, r lambdatest.Result) {
			if !bytes.Contains(r.Payload, []byte(`"data":`+exact)) {
				t.Errorf("result: %s", r.Payload)
			}
		}},
		{"SQL error", fn, queryJSON(db, "select * from no_such_table", ""), 10 * time.Second, "sql_error", func(t *testing.T, r lambdatest.Result) {
			if !strings.Contains(r.Err.ErrorMessage, "42P01") {
				t.Errorf("error: %+v", r.Err)
			}
		}},
		{"bad event", fn, `{"sql":"select 1"}`, 10 * time.Second, "bad_request", func(t *testing.T, r lambdatest.Result) {
			if !strings.Contains(r.Err.ErrorMessage, "sql") {
				t.Errorf("error does not name the unknown field: %+v", r.Err)
			}
		}},
		{"not an object", fn, `"select 1"`, 10 * time.Second, "bad_request", func(t *testing.T, r lambdatest.Result) {}},
		{"deadline exceeded", fn, queryJSON(db, "select pg_sleep(10)", ""), time.Second, "timeout", func(t *testing.T, r lambdatest.Result) {}},
		{"missing credentials", noCreds, sel, 10 * time.Second, "missing_configuration", func(t *testing.T, r lambdatest.Result) {
			if !strings.Contains(r.Err.ErrorMessage, "BITKIT_API_KEY") {
				t.Errorf("error does not name the variable: %+v", r.Err)
			}
		}},
	}
	for _, tc := range directCases {
		t.Run("direct/"+tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.fn.invoke(t, []byte(tc.payload), tc.timeout)
			switch {
			case tc.errType == "" && r.Err != nil:
				t.Fatalf("function error %s: %s", r.Err.ErrorType, r.Err.ErrorMessage)
			case tc.errType != "" && r.Err == nil:
				t.Fatalf("want a function error %s, got %s", tc.errType, r.Payload)
			case tc.errType != "" && r.Err.ErrorType != tc.errType:
				t.Fatalf("errorType = %q, want %q (%s)", r.Err.ErrorType, tc.errType, r.Err.ErrorMessage)
			}
			if strings.Contains(string(r.Payload), s.APIKey) || (r.Err != nil && strings.Contains(r.Err.ErrorMessage, s.APIKey)) {
				t.Fatal("the answer contains the API key")
			}
			tc.check(t, r)
		})
	}
	t.Cleanup(func() {
		for _, f := range []*function{fn, noCreds, noEndpoint} {
			if strings.Contains(f.logs(), s.APIKey) {
				t.Error("the function's output contains the API key")
			}
		}
	})
}

// TestBootstrapPasswordTokenReuse checks that with BITKIT_USERNAME and
// BITKIT_PASSWORD the function logs in once and reuses the token across
// warm invocations: a proxy in front of bitd counts the logins.
func TestBootstrapPasswordTokenReuse(t *testing.T) {
	s := bitdtest.Start(t)
	user := bitdtest.UniqueName("lam")
	const password = "correct-horse-battery-staple-42"
	key := s.NewUser(t, user, password)
	db := setupDB(t, s.Endpoint, key)

	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var logins, queries atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/auth/v1/login"):
			logins.Add(1)
		case strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/query"):
			queries.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	fn := startFunction(t, "BITKIT_ENDPOINT="+proxy.URL, "BITKIT_USERNAME="+user, "BITKIT_PASSWORD="+password)
	const n = 4
	for i := range n {
		r := fn.invoke(t, httpEvent(t, "POST", "/", queryJSON(db, "select $1::int as i", `,"params":[`+string(rune('0'+i))+`]`), false), 10*time.Second)
		status, m, body := httpAnswer(t, r)
		if status != 200 {
			t.Fatalf("invocation %d: status %d: %s", i, status, body)
		}
		if want := `"data":[[` + string(rune('0'+i)) + `]]`; !strings.Contains(body, want) {
			t.Fatalf("invocation %d: %s lacks %s (%v)", i, body, want, m)
		}
		if strings.Contains(body, password) {
			t.Fatal("the answer contains the password")
		}
	}
	if got := queries.Load(); got != n {
		t.Errorf("bitd saw %d queries, want %d", got, n)
	}
	if got := logins.Load(); got != 1 {
		t.Errorf("the function logged in %d times over %d warm invocations, want 1", got, n)
	}
	if out := fn.logs(); strings.Contains(out, password) {
		t.Error("the function's output contains the password")
	}
}
