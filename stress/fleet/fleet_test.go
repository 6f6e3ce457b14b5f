//go:build fleet

package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// replicaCount is how many bitd processes the fleet runs.
const replicaCount = 3

// s3Bucket is the blob store's bucket.
const s3Bucket = "bitkit-fleet"

// replica is one bitd of the fleet with its fixed loopback ports, so that
// a replica restarted after a SIGKILL comes back where HAProxy and
// Prometheus expect it.
type replica struct {
	Name    string // HAProxy's server name: r1, r2, r3
	S       *bitdtest.Server
	HTTP    string // host:port
	PG      string // host:port of the wire proxy
	Metrics string // host:port of the metrics listener
}

// fleet is the running set of processes.
type fleet struct {
	Dir      string
	Replicas []*replica
	HTTP     string // HAProxy's HTTP frontend, host:port
	PG       string // HAProxy's wire-proxy frontend, host:port
	Stats    string // HAProxy's stats page, host:port
	Socket   string // HAProxy's runtime API (unix socket)
	Prom     string // Prometheus, host:port
	S3       *fakeS3
	PG2      *pgCluster // the second PostgreSQL cluster, registered as secondName
	Secret   string     // BITD_SECRET of every replica (db move needs it)
	Key      string     // the demo user's API key
	User     string
	haproxy  *exec.Cmd
	// NoTraces, when not empty, is why the replicas run without tracing
	// (Jaeger is not installed); testTraces fails with it.
	NoTraces string
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fakeS3 is an S3-compatible server (gofakes3 with its in-memory backend)
// on a loopback port, started the way server/cmd/bitd's S3 tests start it:
// the replicas, separate processes, speak real S3 over HTTP to it.
type fakeS3 struct {
	Addr    string
	Backend *s3mem.Backend
}

func startFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{Backend: s3mem.New()}
	if err := f.Backend.CreateBucket(s3Bucket); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = ln.Addr().String()
	srv := &http.Server{Handler: gofakes3.New(f.Backend).Server()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return f
}

// objects is how many objects the bucket holds.
func (f *fakeS3) objects(t *testing.T) int {
	t.Helper()
	l, err := f.Backend.ListBucket(s3Bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Contents)
}

const haproxyConfig = `# HAProxy in front of {{len .Replicas}} bitd replicas (written by stress/fleet).
global
	maxconn 4096
	stats socket {{.Socket}} mode 600 level admin

defaults
	timeout connect 2s
	timeout client 5m
	timeout server 5m
	timeout tunnel 1h
	# A connection refused by a replica that just died is retried on another.
	retries 2
	option redispatch

# The HTTP API: any request to any replica. A replica leaves the rotation
# when its /readyz fails (draining, metadata database unreachable, dead).
frontend bitd_http
	mode http
	bind {{.HTTP}}
	default_backend bitd_http

backend bitd_http
	mode http
	balance roundrobin
	# The client's address for bitd (--trusted-proxies 127.0.0.1).
	option forwardfor
	option httpchk GET /readyz
	http-check expect status 200
	# Which replica answered (for the tests and for operators).
	http-response set-header X-Bitkit-Replica %[srv_name]
	default-server inter 300ms fall 2 rise 1
{{- range .Replicas}}
	server {{.Name}} {{.HTTP}} check
{{- end}}

# The PostgreSQL wire proxy: TCP, so TLS and the wire protocol pass through
# untouched; health from the same replica's /readyz.
frontend bitd_pg
	mode tcp
	bind {{.PG}}
	default_backend bitd_pg

backend bitd_pg
	mode tcp
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server inter 300ms fall 2 rise 1
{{- range .Replicas}}
	server {{.Name}} {{.PG}} check addr {{host .HTTP}} port {{port .HTTP}} send-proxy-v2
{{- end}}

listen stats
	mode http
	bind {{.Stats}}
	stats enable
	stats uri /stats
`

const prometheusConfig = `# Prometheus scraping {{len .Replicas}} bitd replicas (written by stress/fleet).
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: bitd
    static_configs:
      - targets:
{{- range .Replicas}}
          - {{.Metrics}}
{{- end}}
`

func render(t *testing.T, path, text string, data any) {
	t.Helper()
	tpl := template.Must(template.New(filepath.Base(path)).Funcs(template.FuncMap{
		"host": func(a string) string { h, _, _ := net.SplitHostPort(a); return h },
		"port": func(a string) string { _, p, _ := net.SplitHostPort(a); return p },
	}).Parse(text))
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// need returns the path of a command the fleet runs, or fails naming the
// Debian package to install.
func need(t *testing.T, cmd, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err != nil {
		t.Fatalf("%s is not installed: run `make deps` (it installs the Debian package %s) or apt-get install %s", cmd, pkg, pkg)
	}
	return p
}

// startProcess runs a helper (HAProxy, Prometheus) in its own process group
// with its output in dir/name.log, and stops it by pid in t.Cleanup.
func startProcess(t *testing.T, dir, name string, argv ...string) *exec.Cmd {
	t.Helper()
	return bitdtest.StartProcess(t, filepath.Join(dir, name+".log"), 10*time.Second, argv...).Cmd
}

// startFleet starts the S3 server, the replicas, HAProxy and Prometheus,
// and waits until HAProxy sees every replica up.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	haproxyBin := need(t, "haproxy", "haproxy")
	promBin := need(t, "prometheus", "prometheus")
	f := &fleet{Dir: t.TempDir(), HTTP: freeAddr(t), PG: freeAddr(t), Stats: freeAddr(t), Prom: freeAddr(t)}
	f.Socket = filepath.Join(f.Dir, "haproxy.sock")
	f.S3 = startFakeS3(t)
	// Before the replicas: its clean-up then runs after theirs.
	f.PG2 = startSecondCluster(t)
	var sb [32]byte
	_, _ = rand.Read(sb[:])
	f.Secret = hex.EncodeToString(sb[:])

	blob := bitdtest.Env(
		"BITD_BLOB_URL="+fmt.Sprintf("s3://%s?region=us-east-1&endpoint=http://%s&use_path_style=true", s3Bucket, f.S3.Addr),
		"AWS_ACCESS_KEY_ID=bitkit-fleet", "AWS_SECRET_ACCESS_KEY=bitkit-fleet-secret",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	// Traces (traces_test.go): every replica exports to Jaeger, in
	// batches every half second (the SDK's OTEL_BSP_SCHEDULE_DELAY). No
	// new trace is sampled (--trace-sample 0): only requests whose client
	// sent a sampled traceparent, and the jobs they create, are traced, so
	// the other subtests and the load measurement run untraced.
	traces := bitdtest.Env()
	if ok, why := startJaeger(t, f.Dir); ok {
		traces = bitdtest.Env("BITD_OTLP_ENDPOINT=http://"+jaegerOTLP, "BITD_TRACE_SAMPLE=0", "OTEL_BSP_SCHEDULE_DELAY=500")
	} else {
		f.NoTraces = why
	}
	for i := range replicaCount {
		r := &replica{Name: fmt.Sprintf("r%d", i+1), HTTP: freeAddr(t), PG: freeAddr(t), Metrics: freeAddr(t)}
		// Later flags win over bitdtest's --http/--pg 127.0.0.1:0. The
		// public URL is HAProxy's: status and download URLs point there.
		// --log-level debug: a replica logs "job picked up" with the job's
		// id, which tells the tests which replica runs a job.
		args := bitdtest.Args("--http", r.HTTP, "--pg", r.PG, "--metrics", r.Metrics,
			"--public-url", "http://"+f.HTTP, "--log-level", "debug",
			// HAProxy (on 127.0.0.1) forwards the client's address: X-Forwarded-For
			// and a PROXY v2 header on the wire port.
			"--trusted-proxies", "127.0.0.1", "--wire-proxy-protocol",
			// No stock of ready databases: fewer databases to drop at the end.
			"--db-stock", "0")
		if i == 0 {
			r.S = bitdtest.Start(t, bitdtest.Env("BITD_SECRET="+f.Secret), blob, traces, args)
		} else {
			r.S = bitdtest.Start(t, bitdtest.Replica(f.Replicas[0].S), args)
		}
		f.Replicas = append(f.Replicas, r)
	}
	f.Key, f.User = f.Replicas[0].S.APIKey, f.Replicas[0].S.User
	// The replicas learn the clusters from the metadata database: one
	// `cluster add` through any replica's admin command is enough.
	if out := f.Replicas[0].S.Admin(t, "cluster", "add", secondName, f.PG2.Registered); !strings.Contains(out, `"locked_down":true`) {
		t.Fatalf("bitd admin cluster add %s %s: %s (want it added and locked down)", secondName, f.PG2.Registered, out)
	}

	hcfg := filepath.Join(f.Dir, "haproxy.cfg")
	render(t, hcfg, haproxyConfig, f)
	if out, err := exec.Command(haproxyBin, "-c", "-f", hcfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects %s: %v\n%s", hcfg, err, out)
	}
	f.haproxy = startProcess(t, f.Dir, "haproxy", haproxyBin, "-db", "-f", hcfg)

	pcfg := filepath.Join(f.Dir, "prometheus.yml")
	render(t, pcfg, prometheusConfig, f)
	startProcess(t, f.Dir, "prometheus", promBin, "--config.file="+pcfg,
		"--storage.tsdb.path="+filepath.Join(f.Dir, "prometheus"),
		"--web.listen-address="+f.Prom, "--log.level=warn")

	// Runs first at the end: stop the replicas (newest first) and keep
	// every log in test-artifacts/fleet-logs before the temporary
	// directories go.
	t.Cleanup(func() {
		for i := len(f.Replicas) - 1; i >= 0; i-- {
			start := time.Now()
			f.Replicas[i].S.Stop(t)
			t.Logf("%s stopped in %v", f.Replicas[i].Name, time.Since(start).Round(time.Millisecond))
		}
		f.keepLogs(t)
	})
	f.waitUp(t, 60*time.Second)
	eventually(t, 60*time.Second, "Prometheus ready at "+f.Prom+"/-/ready (log: "+filepath.Join(f.Dir, "prometheus.log")+")", func() bool {
		res, err := http.Get("http://" + f.Prom + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return f
}

// keepLogs copies the replicas', HAProxy's and Prometheus's logs and the
// two configurations to test-artifacts/fleet-logs.
func (f *fleet) keepLogs(t *testing.T) {
	dir := filepath.Join(bitdtest.RepoRoot(), "test-artifacts", "fleet-logs")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keeping the logs: %v", err)
		return
	}
	files := map[string]string{}
	for _, r := range f.Replicas {
		files["bitd-"+r.Name+".log"] = r.S.LogPath
	}
	for _, n := range []string{"haproxy.log", "prometheus.log", "haproxy.cfg", "prometheus.yml", "jaeger.log", "jaeger.yaml"} {
		files[n] = filepath.Join(f.Dir, n)
	}
	for name, src := range files {
		if b, err := os.ReadFile(src); err == nil {
			_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
}

// pids maps each live replica's process id to its name.
func (f *fleet) pids() map[int]string {
	m := map[int]string{}
	for _, r := range f.Replicas {
		select {
		case <-r.S.Exited():
		default:
			m[r.S.Pid()] = r.Name
		}
	}
	return m
}

func (f *fleet) replica(name string) *replica {
	for _, r := range f.Replicas {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// kill SIGKILLs a replica and waits until it is gone.
func (f *fleet) kill(t *testing.T, r *replica) {
	t.Helper()
	if err := syscall.Kill(r.S.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", r.Name, err)
	}
	select {
	case <-r.S.Exited():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10 s after SIGKILL", r.Name)
	}
}

// restart starts killed replicas again on their ports and waits until
// HAProxy has every replica back in rotation.
func (f *fleet) restart(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		r.S.Restart(t, syscall.SIGKILL) // already dead: this only starts it
	}
	f.waitUp(t, 60*time.Second)
}

// stat is one row of HAProxy's stats CSV.
type stat map[string]string

// stats reads HAProxy's stats CSV: proxy/server → row.
func (f *fleet) stats(t *testing.T) map[string]stat {
	t.Helper()
	st, err := f.statsE()
	if err != nil {
		t.Fatalf("HAProxy stats: %v (log: %s)", err, filepath.Join(f.Dir, "haproxy.log"))
	}
	return st
}

func (f *fleet) statsE() (map[string]stat, error) {
	res, err := http.Get("http://" + f.Stats + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var cols []string
	out := map[string]stat{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			cols = strings.Split(strings.TrimPrefix(line, "# "), ",")
			continue
		}
		if line == "" || cols == nil {
			continue
		}
		vals := strings.Split(line, ",")
		row := stat{}
		for i, c := range cols {
			if i < len(vals) {
				row[c] = vals[i]
			}
		}
		out[row["pxname"]+"/"+row["svname"]] = row
	}
	return out, sc.Err()
}

// waitUp waits until HAProxy reports every server of both backends UP.
func (f *fleet) waitUp(t *testing.T, within time.Duration) {
	t.Helper()
	var last string
	eventually(t, within, "HAProxy sees every replica up", func() bool {
		st, err := f.statsE()
		if err != nil {
			last = err.Error()
			return false
		}
		last = ""
		for _, be := range []string{"bitd_http", "bitd_pg"} {
			for _, r := range f.Replicas {
				s := st[be+"/"+r.Name]["status"]
				if !strings.HasPrefix(s, "UP") && s != "MAINT" {
					last += fmt.Sprintf(" %s/%s=%q", be, r.Name, s)
				}
			}
		}
		return last == ""
	}, func() string { return "not up:" + last })
}

// runtimeAPI sends one command to HAProxy's runtime API and returns its
// answer.
func (f *fleet) runtimeAPI(t *testing.T, cmd string) string {
	t.Helper()
	c, err := net.Dial("unix", f.Socket)
	if err != nil {
		t.Fatalf("HAProxy runtime API: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	if s := strings.TrimSpace(string(b)); s != "" {
		t.Fatalf("HAProxy runtime API %q: %s", cmd, s)
	}
	return string(b)
}

// setServer puts a server of backend be in maintenance (up=false) or back
// in rotation.
func (f *fleet) setServer(t *testing.T, be, name string, up bool) {
	t.Helper()
	state := "maint"
	if up {
		state = "ready"
	}
	f.runtimeAPI(t, fmt.Sprintf("set server %s/%s state %s", be, name, state))
}

// eventually polls cond (testwait) until it holds, or fails after within.
// detail, when given, explains the last failed attempt.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	testwait.Eventually(t, within, func() error {
		if cond() {
			return nil
		}
		msg := ""
		if len(detail) > 0 {
			msg = ": " + detail[0]()
		}
		return fmt.Errorf("%s: not true%s", what, msg)
	})
}

// wireOwner waits until exactly one replica has an open wire-proxy
// session (bitd_wire_sessions on its metrics listener) and returns it.
func (f *fleet) wireOwner(t *testing.T) *replica {
	t.Helper()
	var owner *replica
	var seen string
	eventually(t, 10*time.Second, "exactly one replica holds a wire session", func() bool {
		owner, seen = nil, ""
		n := 0
		for _, r := range f.Replicas {
			v := r.gauge("bitd_wire_sessions")
			seen += fmt.Sprintf(" %s=%v", r.Name, v)
			if v > 0 {
				owner = r
				n += int(v)
			}
		}
		return n == 1
	}, func() string { return "bitd_wire_sessions:" + seen })
	return owner
}

// gauge reads an unlabelled sample from the replica's /metrics; -1 when
// the replica does not answer or has no such sample.
func (r *replica) gauge(name string) float64 {
	res, err := http.Get("http://" + r.Metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// jobRunner is a replica whose log says it picked up job id, or nil.
func (f *fleet) jobRunner(id string) *replica {
	for _, r := range f.Replicas {
		if pickups(r, id) > 0 {
			return r
		}
	}
	return nil
}

// pickups counts the "job picked up" lines of job id in the replica's log
// (over its restarts).
func pickups(r *replica, id string) int {
	n := 0
	for _, line := range strings.Split(r.S.Logs(), "\n") {
		if strings.Contains(line, "job picked up") && strings.Contains(line, id) {
			n++
		}
	}
	return n
}

// answer is a decoded HTTP answer.
type answer struct {
	Status  int
	Body    map[string]any
	Raw     []byte
	Replica string // X-Bitkit-Replica, set by HAProxy
	Header  http.Header
}

func (a answer) str(k string) string { s, _ := a.Body[k].(string); return s }

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// call sends a JSON request (body nil, a []byte, or a value to encode).
func call(t *testing.T, method, url, key string, body any) answer {
	t.Helper()
	a, err := callE(t.Context(), method, url, key, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

func callE(ctx context.Context, method, url, key string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{Status: res.StatusCode, Raw: raw, Replica: res.Header.Get("X-Bitkit-Replica"), Header: res.Header}
	_ = json.Unmarshal(raw, &a.Body)
	return a, nil
}

// sql runs a query through endpoint and fails unless it answers 200.
func sql(t *testing.T, endpoint, key, db, q string) answer {
	t.Helper()
	a := call(t, "POST", endpoint+"/v2beta/query", key, map[string]any{"database_name": db, "query_string": q})
	if a.Status != 200 {
		t.Fatalf("query %q on %s through %s: %d %s", q, db, endpoint, a.Status, a.Raw)
	}
	return a
}

// scalar is the single value of a one-row, one-column answer, as text.
func scalar(a answer) string {
	rows, _ := a.Body["data"].([]any)
	if len(rows) != 1 {
		return fmt.Sprintf("<%d rows>", len(rows))
	}
	row, _ := rows[0].([]any)
	if len(row) != 1 {
		return fmt.Sprintf("<%d columns>", len(row))
	}
	return fmt.Sprint(row[0])
}

// summary is what TestFleet prints as make fleet's last line.
var summary struct {
	passed, failed []string
	load           string
	move           string // the write pause of testClusterMove
	traces         string // what testTraces found in Jaeger
}

// TestFleet starts the fleet once and runs the fleet tests against it, the
// destructive ones (SIGKILLs) last. It writes the one-line summary to
// test-artifacts/fleet-summary.txt.
func TestFleet(t *testing.T) {
	start := time.Now()
	f := startFleet(t)
	t.Logf("fleet up in %v: HAProxy http://%s (wire %s, stats http://%s/stats), Prometheus http://%s, S3 http://%s, replicas %s %s %s, second PostgreSQL cluster 127.0.0.1:%d (%s); configs in %s",
		time.Since(start).Round(time.Millisecond), f.HTTP, f.PG, f.Stats, f.Prom, f.S3.Addr,
		f.Replicas[0].HTTP, f.Replicas[1].HTTP, f.Replicas[2].HTTP, f.PG2.Port, f.PG2.Dir, f.Dir)
	tests := []struct {
		name string
		fn   func(*testing.T, *fleet)
	}{
		{"AnyReplica", testAnyReplica},
		{"RevokeOnAll", testRevokeOnAll},
		{"CancelAcrossReplicas", testCancelAcrossReplicas},
		{"ClusterPlacement", testClusterPlacement},
		{"Prometheus", testPrometheus},
		{"Traces", testTraces},
		{"ClusterDown", testClusterDown},
		{"ClusterMove", testClusterMove},
		{"Load", testLoad},
		{"KillDuringStream", testKillDuringStream},
		{"KillDuringWireSession", testKillDuringWireSession},
		{"KillDuringJobs", testKillDuringJobs},
	}
	// BITKIT_FLEET_ONLY=Name,Name runs only those subtests (to work on
	// them); the summary then counts only them.
	if only := os.Getenv("BITKIT_FLEET_ONLY"); only != "" {
		names := strings.Split(only, ",")
		tests = slices.DeleteFunc(tests, func(tc struct {
			name string
			fn   func(*testing.T, *fleet)
		}) bool {
			return !slices.Contains(names, tc.name)
		})
		if len(tests) == 0 {
			t.Fatalf("BITKIT_FLEET_ONLY=%s names no subtest of TestFleet", only)
		}
	}
	for _, tc := range tests {
		if t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) }) {
			summary.passed = append(summary.passed, tc.name)
		} else {
			summary.failed = append(summary.failed, tc.name)
		}
		// A failed kill test may leave a replica down: bring it back so
		// that the next test has the whole fleet.
		var dead []*replica
		for _, r := range f.Replicas {
			select {
			case <-r.S.Exited():
				dead = append(dead, r)
			default:
			}
		}
		if len(dead) > 0 {
			f.restart(t, dead...)
		}
	}
	line := fmt.Sprintf("fleet: %d/%d passed", len(summary.passed), len(tests))
	if len(summary.failed) > 0 {
		line += " (FAILED: " + strings.Join(summary.failed, ", ") + ")"
	}
	line += fmt.Sprintf(" in %v with %d bitd replicas behind HAProxy, 2 PostgreSQL clusters, S3 (gofakes3), Prometheus, Jaeger", time.Since(start).Round(time.Second), replicaCount)
	if summary.traces != "" {
		line += "; " + summary.traces
	}
	if summary.move != "" {
		line += "; " + summary.move
	}
	if summary.load != "" {
		line += "; " + summary.load
	}
	t.Log(line)
	out := filepath.Join(bitdtest.RepoRoot(), "test-artifacts", "fleet-summary.txt")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
		_ = os.WriteFile(out, []byte(line+"\n"), 0o644)
	}
}
