package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// client speaks the wire contract with plain net/http, so the suite checks
// what any outside client sees (and does not depend on core's behaviour).
type client struct {
	endpoint string
	key      string
	hc       *http.Client
}

func newClient(endpoint, key string) *client {
	return &client{endpoint: endpoint, key: key, hc: &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}}
}

// result is a decoded JSON answer.
type result struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

func (r result) str(k string) string { s, _ := r.Body[k].(string); return s }

func (c *client) do(t testing.TB, method, path string, body any, hdr ...string) result {
	t.Helper()
	r, err := c.doE(method, path, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (c *client) doE(method, path string, body any, hdr ...string) (result, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return result{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.endpoint+path, rd)
	if err != nil {
		return result{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	out := result{Status: resp.StatusCode, Raw: raw, Header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out.Body)
	}
	return out, nil
}

func (c *client) query(t testing.TB, db, sql string, params ...any) result {
	t.Helper()
	body := map[string]any{"database_name": db, "query_string": sql}
	if len(params) > 0 {
		body["params"] = params
	}
	return c.do(t, "POST", "/v2beta/query", body)
}

func (c *client) mustQuery(t testing.TB, db, sql string, params ...any) result {
	t.Helper()
	r := c.query(t, db, sql, params...)
	if r.Status != 200 {
		t.Fatalf("query %q on %s: %d %s", sql, db, r.Status, r.Raw)
	}
	return r
}

func (c *client) createDB(t testing.TB, name string, private bool) string {
	t.Helper()
	r := c.do(t, "POST", "/v2beta/db/", map[string]any{"name": name, "is_private": private})
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("create database %s: %d %s", name, r.Status, r.Raw)
	}
	return r.str("name")
}

// secrets collects every credential the suite used, so that the logs of every
// bitd it ran can be searched for them at the end.
var secrets = struct {
	sync.Mutex
	list []string
	logs []string
}{}

func remember(s ...string) {
	secrets.Lock()
	defer secrets.Unlock()
	for _, v := range s {
		if len(v) >= 8 {
			secrets.list = append(secrets.list, v)
		}
	}
}

// start runs a bitd for the test and registers its key and log for the final
// secret scan.
func start(t testing.TB, opts ...bitdtest.Option) *bitdtest.Server {
	t.Helper()
	s := bitdtest.Start(t, opts...)
	remember(s.APIKey)
	if u, err := url.Parse(bitdtest.DatabaseURL(t)); err == nil {
		if pw, ok := u.User.Password(); ok {
			remember(pw) // the cluster's superuser password must not be logged either
		}
	}
	secrets.Lock()
	secrets.logs = append(secrets.logs, s.LogPath)
	secrets.Unlock()
	return s
}

// startScanned is start, and scans the bitd's log for secrets and
// unexpected errors when the test ends (scanLogs).
func startScanned(t testing.TB, opts ...bitdtest.Option) *bitdtest.Server {
	t.Helper()
	s := start(t, opts...)
	t.Cleanup(func() { scanLogs(t, s) })
	return s
}

// reliability rows, written to test-artifacts/reliability.md by TestMain.
var report = struct {
	sync.Mutex
	rows map[string]string
}{rows: map[string]string{}}

// record notes what a test tried and what happened, for docs/reliability.md.
// If the test fails later, the row says so instead.
func record(t testing.TB, what, outcome string) {
	report.Lock()
	defer report.Unlock()
	key := t.Name() + "\x00" + what
	report.rows[key] = outcome
	t.Cleanup(func() {
		if t.Failed() {
			report.Lock()
			defer report.Unlock()
			report.rows[key] = "**FAILED** later in the test (this step: " + outcome + "); see the test log"
		}
	})
}

// tried registers a row that appears only if the test fails, so that a
// failing test shows in docs/reliability.md even before its first record.
func tried(t testing.TB, what string) {
	t.Cleanup(func() {
		if t.Failed() {
			report.Lock()
			defer report.Unlock()
			report.rows[t.Name()+"\x00"+what] = "**FAILED**: see the test log"
		}
	})
}

func writeReport(path string) error {
	report.Lock()
	defer report.Unlock()
	if len(report.rows) == 0 {
		return nil
	}
	keys := make([]string, 0, len(report.rows))
	for k := range report.rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "| test | what was tried | result |\n|---|---|---|\n")
	for _, k := range keys {
		name, what, _ := strings.Cut(k, "\x00")
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, what, report.rows[k])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// otherUser creates a second user of s named prefix plus a random suffix,
// remembers its API key for the secret scan, and returns a client with that
// key and the key itself.
func otherUser(t testing.TB, s *bitdtest.Server, prefix string) (*client, string) {
	t.Helper()
	key := s.NewUser(t, prefix+randSuffix(), "")
	remember(key)
	return newClient(s.Endpoint, key), key
}

// needWire fails t when s runs no wire proxy.
func needWire(t testing.TB, s *bitdtest.Server) {
	t.Helper()
	if s.PGAddr == "" {
		t.Fatal("bitd dev runs no wire proxy (BITKIT_PG_ADDR missing from demo.env); start it with --pg")
	}
}
