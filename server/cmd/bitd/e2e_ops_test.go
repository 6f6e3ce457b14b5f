package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads bitd's /metrics from its metrics listener and parses it.
func scrape(t *testing.T, s *bitdtest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	addr := s.Env["BITKIT_METRICS_ADDR"]
	if addr == "" {
		t.Fatal("demo.env names no BITKIT_METRICS_ADDR: was bitd started with --metrics?")
	}
	res, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics is not in the Prometheus text format: %v", err)
	}
	return fams
}

// metric sums the samples of family name whose labels include every pair
// of labels ("k=v"); a histogram counts its observations. ok is false when
// no sample matched.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) (sum float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, ok
}

// must returns metric's sum, failing the test when no sample matched.
func must(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metric(fams, name, labels...)
	if !ok {
		t.Fatalf("no %s%v in /metrics", name, labels)
	}
	return v
}

// TestMetrics drives queries, a wire-proxy session, failed logins up to the
// limiter and an import through a real bitd, then scrapes /metrics on the
// metrics listener and checks that every family moved; the public listener
// does not serve it.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--metrics", "127.0.0.1:0"))
	E, key := s.Endpoint, s.APIKey
	before := scrape(t, s)
	for _, name := range []string{"bitd_pool_connections", "bitd_wire_sessions", "bitd_jobs",
		"bitd_access_cache_lookups_total", "bitd_login_limited_total", "bitd_job_rows_total", "go_goroutines", "process_cpu_seconds_total"} {
		if before[name] == nil {
			t.Errorf("family %s missing from /metrics", name)
		}
	}
	queries0, _ := metric(before, "bitd_http_requests_total", "route=POST /v2beta/query", "code=200")
	rows0, _ := metric(before, "bitd_query_rows_total")

	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "metricsdb"}), http.StatusCreated, "")
	db := s.User + "/metricsdb"
	const n = 5
	for range n {
		want(t, sqlAs(t, E, key, db, "select g from generate_series(1,10) g"), 200, "")
	}
	sqlErrors0, _ := metric(before, "bitd_http_errors_total", "route=POST /v2beta/query", "code=sql_error")
	want(t, sqlAs(t, E, key, db, "select 1/0"), http.StatusBadRequest, "sql_error")

	// A wire-proxy session.
	c := wireConn(t, s, key, db)
	var one int
	if err := c.QueryRow(t.Context(), "select 1").Scan(&one); err != nil {
		t.Fatal(err)
	}

	// Failed logins until the limiter answers 429.
	user := bitdtest.UniqueName("metrics_")
	s.NewUser(t, user, "right-password-1")
	limited := false
	for range 10 {
		r := call(t, "POST", E+"/auth/v1/login", "", map[string]any{"username": user, "password": "wrong"})
		if r.Status == http.StatusTooManyRequests {
			limited = true
			break
		}
		want(t, r, http.StatusUnauthorized, "invalid_credentials")
	}
	if !limited {
		t.Fatal("10 failed logins were never limited")
	}

	// An import job.
	job := importCSV(t, E, key, db, "people", "id,name\n1,a\n2,b\n3,c\n")
	if job.Status != http.StatusAccepted && job.Status != http.StatusOK {
		t.Fatalf("import answered %d: %s", job.Status, job.Raw)
	}
	if st := waitJob(t, key, job); st.str("state") != "DONE" {
		t.Fatalf("import ended %s", st.Raw)
	}

	// The public listener does not serve the metrics.
	res, err := httpClient.Get(E + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusOK && bytes.Contains(pub, []byte("bitd_http_requests_total")) {
		t.Fatal("the public HTTP listener serves /metrics")
	}

	// Query rows reach the counter with the usage counts, about once a
	// second: poll.
	var after map[string]*dto.MetricFamily
	eventually(t, "query rows counted", func() bool {
		after = scrape(t, s)
		v, _ := metric(after, "bitd_query_rows_total")
		return v >= rows0+n*10
	})
	if v := must(t, after, "bitd_http_requests_total", "route=POST /v2beta/query", "code=200"); v < queries0+n {
		t.Errorf("query requests %v, want at least %v", v, queries0+n)
	}
	if v := must(t, after, "bitd_http_request_duration_seconds", "route=POST /v2beta/query"); v < n {
		t.Errorf("query latency observations %v, want at least %d", v, n)
	}
	if v := must(t, after, "bitd_http_response_bytes_total", "route=POST /v2beta/query"); v <= 0 {
		t.Errorf("query response bytes %v", v)
	}
	// Route labels are patterns, never raw paths.
	for _, m := range after["bitd_http_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "route" && strings.Contains(lp.GetValue(), s.User) {
				t.Errorf("route label %q holds a raw path", lp.GetValue())
			}
		}
	}
	imp1, _ := metric(after, "bitd_http_requests_total", "route=POST /v2beta/db/{account}/{db}/import")
	imp2, _ := metric(after, "bitd_http_requests_total", "route=POST /v2beta/db/{account}/{db}/import/{$}")
	if imp1+imp2 < 1 {
		t.Error("no import request counted under its route pattern")
	}
	// Error answers are counted by route and code.
	if v := must(t, after, "bitd_http_errors_total", "route=POST /v2beta/query", "code=sql_error"); v != sqlErrors0+1 {
		t.Errorf("query sql_error answers counted %v, want %v", v, sqlErrors0+1)
	}
	if v := must(t, after, "bitd_http_errors_total", "route=POST /auth/v1/login", "code=invalid_credentials"); v < 5 {
		t.Errorf("failed logins counted as errors %v, want at least 5", v)
	}
	if v := must(t, after, "bitd_login_failures_total"); v < 5 {
		t.Errorf("login failures %v, want at least 5", v)
	}
	if v := must(t, after, "bitd_login_limited_total", "reason=failures"); v < 1 {
		t.Errorf("limiter hits %v, want at least 1", v)
	}
	if v := must(t, after, "bitd_pool_open", "cluster=default"); v < 1 {
		t.Errorf("open pools %v after queries", v)
	}
	if v := must(t, after, "bitd_pool_connections", "cluster=default", "state=idle") +
		must(t, after, "bitd_pool_connections", "cluster=default", "state=in_use"); v < 1 {
		t.Errorf("pool connections %v after queries", v)
	}
	if v := must(t, after, "bitd_wire_sessions"); v != 1 {
		t.Errorf("open wire sessions %v, want 1", v)
	}
	if v := must(t, after, "bitd_wire_sessions_total"); v < 1 {
		t.Errorf("wire sessions total %v", v)
	}
	if v := must(t, after, "bitd_wire_bytes_total", "direction=to_client"); v <= 0 {
		t.Errorf("wire bytes to clients %v", v)
	}
	if v := must(t, after, "bitd_wire_bytes_total", "direction=to_backend"); v <= 0 {
		t.Errorf("wire bytes to the backend %v", v)
	}
	if v := must(t, after, "bitd_job_duration_seconds", "kind=import", "state=DONE"); v < 1 {
		t.Errorf("finished imports %v, want 1", v)
	}
	if v := must(t, after, "bitd_job_rows_total", "kind=import"); v < 3 {
		t.Errorf("imported rows %v, want 3", v)
	}
	if _, ok := metric(after, "bitd_jobs", "kind=import", "state=RECEIVED"); !ok {
		t.Error("no bitd_jobs{kind=import,state=RECEIVED}")
	}
	if v := must(t, after, "bitd_access_cache_lookups_total", "result=hit"); v < 1 {
		t.Errorf("cache hits %v after repeated queries", v)
	}
	if v := must(t, after, "bitd_access_cache_lookups_total", "result=miss"); v < 1 {
		t.Errorf("cache misses %v", v)
	}
	// Revoking a key invalidates (NOTIFY reaches the cache).
	inv0 := must(t, after, "bitd_access_cache_invalidations_total")
	k2 := s.Admin(t, "key", "create", user)
	s.Admin(t, "key", "revoke", strings.TrimSpace(k2))
	eventually(t, "cache invalidation counted", func() bool {
		v, _ := metric(scrape(t, s), "bitd_access_cache_invalidations_total")
		return v > inv0
	})
}

// execBitd is a bitd command with args.
func execBitd(t *testing.T, args ...string) *exec.Cmd {
	return exec.CommandContext(t.Context(), bitdtest.Bitd(t), args...)
}

// TestMetricsAddrRefused: --metrics must be loopback unless
// --metrics-any-addr.
func TestMetricsAddrRefused(t *testing.T) {
	t.Parallel()
	cmd := execBitd(t, "serve", "--database-url", "postgres://x@127.0.0.1/x", "--metrics", "0.0.0.0:9090")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--metrics must listen on a loopback address") {
		t.Fatalf("bitd serve --metrics 0.0.0.0:9090: err %v, output %s", err, out)
	}
}

// forwarder is a TCP forwarder on loopback between bitd and PostgreSQL that
// the test can cut (Close: listener and every connection) and reopen on the
// same port: a metadata database that becomes unreachable over a real TCP
// path.
type forwarder struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newForwarder(t *testing.T, target string) *forwarder {
	f := &forwarder{t: t, target: target, conns: map[net.Conn]bool{}}
	f.open("127.0.0.1:0")
	t.Cleanup(f.Close)
	return f
}

func (f *forwarder) open(addr string) {
	var ln net.Listener
	err := testwait.Wait(context.Background(), 5*time.Second, func() error { // the port was just released
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.ln, f.addr = ln, ln.Addr().String()
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", f.target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns[c], f.conns[b] = true, true
			f.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
}

// Close cuts the path: no new connection, every open one closed.
func (f *forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}

// Reopen listens again on the same port.
func (f *forwarder) Reopen() { f.open(f.addr) }

// TestReadyz: /readyz is 200 normally, 503 metadata_unreachable while the
// metadata database cannot be reached (a TCP forwarder between bitd and
// PostgreSQL is cut) and 200 again when it comes back; /healthz stays the
// liveness check.
func TestReadyz(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	fw := newForwarder(t, u.Host)
	u.Host = fw.addr
	s := bitdtest.Start(t, bitdtest.Env("BITD_DATABASE_URL="+u.String()))
	want(t, call(t, "GET", s.Endpoint+"/readyz", "", nil), 200, "")

	fw.Close()
	eventually(t, "/readyz 503 with the metadata database cut", func() bool {
		return call(t, "GET", s.Endpoint+"/readyz", "", nil).Status == http.StatusServiceUnavailable
	})
	r := call(t, "GET", s.Endpoint+"/readyz", "", nil)
	want(t, r, http.StatusServiceUnavailable, "metadata_unreachable")
	if !strings.Contains(r.str("error"), "metadata database") {
		t.Errorf("reason %q does not name the metadata database", r.str("error"))
	}

	fw.Reopen()
	eventually(t, "/readyz 200 once the metadata database is back", func() bool {
		return call(t, "GET", s.Endpoint+"/readyz", "", nil).Status == http.StatusOK
	})
}

// TestReadyzDraining: after SIGTERM, during --drain-delay, /readyz answers
// 503 draining while requests are still served; then bitd exits.
func TestReadyzDraining(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--drain-delay", "3s"))
	want(t, call(t, "GET", s.Endpoint+"/readyz", "", nil), 200, "")
	sigterm(t, s)
	eventually(t, "/readyz 503 after SIGTERM", func() bool {
		return call(t, "GET", s.Endpoint+"/readyz", "", nil).Status == http.StatusServiceUnavailable
	})
	r := call(t, "GET", s.Endpoint+"/readyz", "", nil)
	want(t, r, http.StatusServiceUnavailable, "draining")
	// Still serving while load balancers move away.
	want(t, call(t, "GET", s.Endpoint+"/healthz", "", nil), 200, "")
	want(t, call(t, "GET", s.Endpoint+"/v2beta/db/", s.APIKey, nil), 200, "")
	start := time.Now()
	select {
	case <-s.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("bitd did not exit within 30 s of SIGTERM")
	}
	t.Logf("bitd exited %v after the checks", time.Since(start).Round(10*time.Millisecond))
	if !strings.Contains(s.Logs(), "drained") {
		t.Errorf("no drain in the log:\n%s", s.Logs())
	}
}

// sigterm sends bitd SIGTERM and has the test's clean-up wait for it to
// exit: a second signal (the clean-up's Stop) would end it at once, before
// its --ephemeral clean-up.
func sigterm(t *testing.T, s *bitdtest.Server) {
	t.Helper()
	if err := syscall.Kill(s.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // runs before Start's Stop
		select {
		case <-s.Exited():
		case <-time.After(40 * time.Second):
			t.Errorf("bitd did not exit within 40 s of SIGTERM")
		}
	})
}

// openStream starts an NDJSON query and returns its reader once the header
// line arrived.
func openStream(t *testing.T, s *bitdtest.Server, db, sql string) (*bufio.Reader, io.Closer) {
	t.Helper()
	body, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": sql, "timeout_ms": 600000})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.Endpoint+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("stream answered %d: %s", res.StatusCode, b)
	}
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("stream header: %v", err)
	}
	return br, res.Body
}

// TestDrainStream sends SIGTERM during NDJSON streams: one that ends within
// --drain-timeout arrives whole (every row and the row_count trailer); one
// that would outlast it is cut visibly, its last line a shutting_down error.
func TestDrainStream(t *testing.T) {
	t.Parallel()
	t.Run("completes", func(t *testing.T) {
		t.Parallel()
		s := bitdtest.Start(t, bitdtest.Args("--drain-timeout", "30s"))
		want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", s.APIKey, map[string]any{"name": "drain1"}), http.StatusCreated, "")
		const rows = 200 // about 2 s at 10 ms a row
		br, body := openStream(t, s, s.User+"/drain1",
			fmt.Sprintf("select g, repeat('x', 3000) as pad, pg_sleep(0.01) from generate_series(1,%d) g", rows))
		defer body.Close()
		sigterm(t, s)
		sent := time.Now()
		var lines []string
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				lines = append(lines, strings.TrimSpace(line))
			}
			if err != nil {
				break
			}
		}
		t.Logf("stream ended %v after SIGTERM", time.Since(sent).Round(10*time.Millisecond))
		if len(lines) != rows+1 {
			t.Fatalf("%d lines after the header, want %d rows and the trailer; last %.200q", len(lines), rows+1, lines[len(lines)-1])
		}
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"row_count":200`) {
			t.Fatalf("last line %.200q, want the row_count trailer", last)
		}
	})
	t.Run("cut", func(t *testing.T) {
		t.Parallel()
		s := bitdtest.Start(t, bitdtest.Args("--drain-timeout", "2s"))
		want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", s.APIKey, map[string]any{"name": "drain2"}), http.StatusCreated, "")
		br, body := openStream(t, s, s.User+"/drain2",
			"select g, repeat('x', 3000) as pad, pg_sleep(0.01) from generate_series(1,100000) g")
		defer body.Close()
		sent := time.Now()
		sigterm(t, s)
		var last string
		var rerr error
		n := 0
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				last = line
				n++
			}
			if err != nil {
				rerr = err
				break
			}
		}
		t.Logf("stream ended %v after SIGTERM with %d lines (%v)", time.Since(sent).Round(10*time.Millisecond), n, rerr)
		if !strings.Contains(last, `"code":"shutting_down"`) || !strings.HasPrefix(last, `{"error":`) {
			t.Fatalf("last line %.300q, want a shutting_down error line", last)
		}
		if time.Since(sent) < 2*time.Second {
			t.Errorf("the stream was cut %v after SIGTERM, before the 2 s drain timeout", time.Since(sent))
		}
	})
}

// slowCSV serves a CSV of n rows at /people.csv: the first request gets a
// few rows, then nothing more until its client leaves (an import that is
// still running when its bitd drains); later requests get the whole file.
type slowCSV struct {
	n        int
	requests atomic.Int32
	first    chan struct{} // closed when the first request arrived
}

func (s *slowCSV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/csv")
	var b strings.Builder
	b.WriteString("id,name\n")
	for i := 1; i <= s.n; i++ {
		fmt.Fprintf(&b, "%d,name-%d\n", i, i)
	}
	body := b.String()
	if s.requests.Add(1) > 1 {
		_, _ = io.WriteString(w, body)
		return
	}
	close(s.first)
	_, _ = io.WriteString(w, body[:100])
	w.(http.Flusher).Flush()
	<-r.Context().Done() // the fetching bitd gave up: it was drained
}

// TestDrainImportReplicas sends SIGTERM to the replica running an import
// (its file_url fetch hangs): the drained replica hands the job back and
// the other replica runs it; the job ends DONE and its rows are loaded
// exactly once. The primary, which owns the test's clean-up, is paused
// (SIGSTOP) while the job is queued so that a replica takes it.
func TestDrainImportReplicas(t *testing.T) {
	t.Parallel()
	const rows = 5000
	src := &slowCSV{n: rows, first: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fileSrv := &http.Server{Handler: src}
	go func() { _ = fileSrv.Serve(ln) }()
	t.Cleanup(func() { fileSrv.Close() })

	p := bitdtest.Start(t, bitdtest.SharedSecret())
	want(t, call(t, "POST", p.Endpoint+"/v2beta/db/", p.APIKey, map[string]any{"name": "drainimp"}), http.StatusCreated, "")
	db := p.User + "/drainimp"
	opts := []bitdtest.Option{bitdtest.Replica(p), bitdtest.Args("--log-level", "debug", "--drain-timeout", "1s")}
	r1 := bitdtest.Start(t, opts...)
	r2 := bitdtest.Start(t, opts...)
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(p.Pid(), syscall.SIGCONT) }) // runs before the Stops

	form := url.Values{"file_url": {"http://" + ln.Addr().String() + "/people.csv"}, "table_name": {"people"}}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", r1.Endpoint+"/v2beta/db/"+db+"/import/", strings.NewReader(form.Encode()))
	req.Header.Set("Authorization", "Bearer "+p.APIKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	job := resp{Status: res.StatusCode}
	job.Raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if err := jsonx.Unmarshal(job.Raw, &job.Body); err != nil {
		t.Fatalf("import answer is not JSON: %s", job.Raw)
	}
	if job.Status != http.StatusAccepted && job.Status != http.StatusOK {
		t.Fatalf("import answered %d: %s", job.Status, job.Raw)
	}
	select {
	case <-src.first:
	case <-time.After(60 * time.Second):
		t.Fatal("no replica fetched the file within 60 s")
	}
	var runner, other *bitdtest.Server
	eventually(t, "the replica running the import", func() bool {
		switch {
		case strings.Contains(r1.Logs(), "job picked up"):
			runner, other = r1, r2
		case strings.Contains(r2.Logs(), "job picked up"):
			runner, other = r2, r1
		}
		return runner != nil
	})
	if err := syscall.Kill(runner.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-runner.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the drained replica did not exit within 30 s")
	}
	u := strings.Replace(job.str("status_url"), r1.Endpoint, other.Endpoint, 1)
	var st resp
	testwait.Eventually(t, 90*time.Second, func() error {
		st = call(t, "GET", u, p.APIKey, nil)
		want(t, st, 200, "")
		if s := st.str("state"); s != "DONE" && s != "FAILED" {
			return fmt.Errorf("the import did not end after the drain: %s", st.Raw)
		}
		return nil
	})
	if st.str("state") != "DONE" {
		t.Fatalf("import ended %s", st.Raw)
	}
	r := sqlAs(t, other.Endpoint, p.APIKey, db, "select count(*), count(distinct id) from people")
	want(t, r, 200, "")
	if got := fmt.Sprint(r.Body["data"]); got != fmt.Sprintf("[[%d %d]]", rows, rows) {
		t.Fatalf("people holds %s rows (count, distinct ids), want %d once each", got, rows)
	}
	if n := src.requests.Load(); n != 2 {
		t.Errorf("the file was fetched %d times, want 2 (the drained attempt, then the other replica's)", n)
	}
	if !strings.Contains(runner.Logs(), "drained") {
		t.Errorf("the runner's log shows no drain:\n%s", runner.Logs())
	}
}

// TestDrainWire sends SIGTERM while one wire-proxy session runs a long
// query and another is idle: the busy one gets --drain-timeout, then both
// end with FATAL 57P01 (admin_shutdown), never a bare dropped connection.
func TestDrainWire(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t, bitdtest.Args("--drain-timeout", "2s"))
	want(t, call(t, "POST", s.Endpoint+"/v2beta/db/", s.APIKey, map[string]any{"name": "drainwire"}), http.StatusCreated, "")
	db := s.User + "/drainwire"
	busy := wireConn(t, s, s.APIKey, db)
	idle := wireConn(t, s, s.APIKey, db)
	var one int
	if err := idle.QueryRow(t.Context(), "select 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := busy.Exec(t.Context(), "select pg_sleep(30)")
		errc <- err
	}()
	<-started
	time.Sleep(300 * time.Millisecond) // the query is running
	sent := time.Now()
	sigterm(t, s)
	select {
	case err := <-errc:
		if sqlState(err) != "57P01" {
			t.Fatalf("the busy session's query ended with %v, want SQLSTATE 57P01", err)
		}
		if d := time.Since(sent); d < 2*time.Second {
			t.Errorf("the busy session was ended %v after SIGTERM, before the 2 s drain timeout", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the busy session was not ended within 30 s of SIGTERM")
	}
	if err := idle.QueryRow(t.Context(), "select 1").Scan(&one); sqlState(err) != "57P01" {
		t.Errorf("the idle session after the drain: %v, want SQLSTATE 57P01", err)
	}

}
