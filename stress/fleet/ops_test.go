//go:build fleet

package fleet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// promInstances asks Prometheus's HTTP API for query and returns the
// distinct instance labels of the answer.
func promInstances(t *testing.T, f *fleet, query string) ([]string, string) {
	t.Helper()
	return promLabels(t, f, query, "instance")
}

// promLabels asks Prometheus's HTTP API for query and returns the distinct
// values of the labels (joined by a space) of the answer's series.
func promLabels(t *testing.T, f *fleet, query string, labels ...string) ([]string, string) {
	t.Helper()
	res, err := http.Get("http://" + f.Prom + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatalf("Prometheus API: %v", err)
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("Prometheus API %q: %v", query, err)
	}
	if body.Status != "success" {
		t.Fatalf("Prometheus API %q: %s %s", query, body.Status, body.Error)
	}
	seen := map[string]bool{}
	for _, r := range body.Data.Result {
		var vs []string
		for _, l := range labels {
			vs = append(vs, r.Metric[l])
		}
		seen[strings.Join(vs, " ")] = true
	}
	var out []string
	for i := range seen {
		out = append(out, i)
	}
	slices.Sort(out)
	return out, fmt.Sprintf("%d series", len(body.Data.Result))
}

// testPrometheus: Prometheus, scraping the replicas' metrics listeners,
// answers the request and pool series of every replica through its own
// HTTP API, the pool series of each replica with both clusters' labels.
func testPrometheus(t *testing.T, f *fleet) {
	var want, wantPools []string
	dbs := dbOnEach(t, f, "prom_")
	for _, r := range f.Replicas {
		want = append(want, r.Metrics)
		// A request on every replica, so that each has request series,
		// and a query on each cluster, so that each has a pool there.
		call(t, "POST", r.S.Endpoint+"/v2beta/query", f.Key, map[string]any{"database_name": f.User + "/nodb", "query_string": "select 1"})
		for _, c := range []string{defaultName, secondName} {
			sql(t, r.S.Endpoint, f.Key, dbs[c], "select 1")
			wantPools = append(wantPools, r.Metrics+" "+c)
		}
	}
	slices.Sort(want)
	slices.Sort(wantPools)
	for _, q := range []string{
		`up{job="bitd"} == 1`,
		`sum by (instance) (bitd_http_requests_total)`,
		`sum by (instance) (rate(bitd_http_request_duration_seconds_count[1m]))`,
		`bitd_pool_connections`,
	} {
		var got []string
		var detail string
		eventually(t, 45*time.Second, "Prometheus returns "+q+" for every replica", func() bool {
			got, detail = promInstances(t, f, q)
			return slices.Equal(got, want)
		}, func() string { return fmt.Sprintf("instances %v (%s), want %v", got, detail, want) })
		t.Logf("%s: instances %v (%s)", q, got, detail)
	}
	for _, q := range []string{`bitd_pool_open > 0`, `bitd_pool_connections{state="max"} > 0`} {
		var got []string
		var detail string
		eventually(t, 45*time.Second, "Prometheus returns "+q+" for every replica and cluster", func() bool {
			got, detail = promLabels(t, f, q, "instance", "cluster")
			return slices.Equal(got, wantPools)
		}, func() string { return fmt.Sprintf("instance, cluster: %v (%s), want %v", got, detail, wantPools) })
		t.Logf("%s: instance, cluster %v (%s)", q, got, detail)
	}
}

// cpuTicks is the user+system CPU time of pid in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fs) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fs[11], 10, 64)
	st, _ := strconv.ParseInt(fs[12], 10, 64)
	return u + st
}

// loadResult is one case of the mixed load.
type loadResult struct {
	Replicas      int
	Requests      int
	Errors        int
	PerSec        float64
	P50, P99      time.Duration
	BitdCPUPerReq time.Duration // CPU of all bitd processes per request
	LBCPUPerReq   time.Duration // HAProxy's CPU per request
	PerReplica    map[string]int
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d replica(s): %.0f req/s, p50 %.1f ms, p99 %.1f ms, bitd CPU %d µs/req, HAProxy CPU %d µs/req, %d errors, spread %v",
		r.Replicas, r.PerSec, ms(r.P50), ms(r.P99), r.BitdCPUPerReq.Microseconds(), r.LBCPUPerReq.Microseconds(), r.Errors, r.PerReplica)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadClients and loadDuration shape the mixed load; BITKIT_FLEET_LOAD_S
// changes the duration of each case.
const loadClients = 16

func loadDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("BITKIT_FLEET_LOAD_S")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

// mixedLoad runs loadClients clients through HAProxy for d: 70 % point
// SELECTs, 20 % INSERTs, 10 % NDJSON streams of 200 rows (read to their
// trailer).
func mixedLoad(t *testing.T, f *fleet, db string, d time.Duration, replicas int) loadResult {
	lb := "http://" + f.HTTP + "/v2beta/query"
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients * 2}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	pids := f.pids()
	cpu := func() (bitd, lb int64) {
		for pid := range pids {
			bitd += cpuTicks(pid)
		}
		return bitd, cpuTicks(f.haproxy.Process.Pid)
	}
	var mu sync.Mutex
	var lat []time.Duration
	res := loadResult{Replicas: replicas, PerReplica: map[string]int{}}
	b0, l0 := cpu()
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for c := range loadClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			var my []time.Duration
			errs := 0
			spread := map[string]int{}
			for i := 0; time.Now().Before(stop); i++ {
				var q map[string]any
				stream := false
				switch p := rng.IntN(100); {
				case p < 70:
					q = map[string]any{"database_name": db, "query_string": "select id, v from items where id = $1", "params": []any{rng.IntN(1000) + 1}}
				case p < 90:
					q = map[string]any{"database_name": db, "query_string": "insert into log (client, n) values ($1, $2)", "params": []any{c, i}}
				default:
					q = map[string]any{"database_name": db, "query_string": "select id, v from items where id <= 200 order by id"}
					stream = true
				}
				j, _ := json.Marshal(q)
				req, _ := http.NewRequest("POST", lb, bytes.NewReader(j))
				req.Header.Set("Authorization", "Bearer "+f.Key)
				req.Header.Set("Content-Type", "application/json")
				if stream {
					req.Header.Set("Accept", "application/x-ndjson")
				}
				t0 := time.Now()
				ok := false
				if r, err := hc.Do(req); err == nil {
					spread[r.Header.Get("X-Bitkit-Replica")]++
					if stream {
						ok = r.StatusCode == 200 && streamComplete(r)
					} else {
						var buf bytes.Buffer
						_, _ = buf.ReadFrom(r.Body)
						ok = r.StatusCode == 200
					}
					r.Body.Close()
				}
				if ok {
					my = append(my, time.Since(t0))
				} else {
					errs++
				}
			}
			mu.Lock()
			lat = append(lat, my...)
			res.Errors += errs
			for k, v := range spread {
				res.PerReplica[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	b1, l1 := cpu()
	slices.Sort(lat)
	res.Requests = len(lat)
	if len(lat) == 0 {
		t.Fatalf("no request succeeded in the %d-replica case (%d errors)", replicas, res.Errors)
	}
	res.PerSec = float64(len(lat)) / el.Seconds()
	res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	tick := 10 * time.Millisecond // USER_HZ is 100 on Linux
	res.BitdCPUPerReq = time.Duration(b1-b0) * tick / time.Duration(len(lat))
	res.LBCPUPerReq = time.Duration(l1-l0) * tick / time.Duration(len(lat))
	return res
}

// streamComplete reads an NDJSON answer to its end and reports whether its
// last line is the row_count trailer.
func streamComplete(r *http.Response) bool {
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	last := ""
	for sc.Scan() {
		last = sc.Text()
	}
	return sc.Err() == nil && strings.HasPrefix(last, `{"row_count":`)
}

// testLoad measures the mixed load through HAProxy with one replica in
// rotation (the others in maintenance) and with all three.
func testLoad(t *testing.T, f *fleet) {
	lb := "http://" + f.HTTP
	db := newDB(t, f, "load_")
	sql(t, lb, f.Key, db, `create table items (id int primary key, v text);
		insert into items select g, md5(g::text) from generate_series(1, 1000) g;
		create table log (client int, n int, at timestamptz default now())`)
	d := loadDuration()
	var results []loadResult
	for _, n := range []int{1, replicaCount} {
		for i, r := range f.Replicas {
			f.setServer(t, "bitd_http", r.Name, i < n)
		}
		// Warm every replica's pools and caches (directly), then measure.
		for _, r := range f.Replicas {
			sql(t, r.S.Endpoint, f.Key, db, "select count(*) from items")
		}
		res := mixedLoad(t, f, db, d, n)
		if res.Errors > 0 {
			t.Errorf("%d-replica case: %d requests failed", n, res.Errors)
		}
		if len(res.PerReplica) != n {
			t.Errorf("%d-replica case: HAProxy sent requests to %v", n, res.PerReplica)
		}
		t.Log(res)
		results = append(results, res)
	}
	for _, r := range f.Replicas {
		f.setServer(t, "bitd_http", r.Name, true)
	}
	one, three := results[0], results[1]
	summary.load = fmt.Sprintf("mixed load (%d clients, %v each): 1 replica %.0f req/s p99 %.1f ms %d µs bitd CPU/req; %d replicas %.0f req/s p99 %.1f ms %d µs bitd CPU/req (x%.2f)",
		loadClients, d, one.PerSec, ms(one.P99), one.BitdCPUPerReq.Microseconds(),
		three.Replicas, three.PerSec, ms(three.P99), three.BitdCPUPerReq.Microseconds(), three.PerSec/one.PerSec)
	out := filepath.Join(bitdtest.RepoRoot(), "test-artifacts", "fleet-load.txt")
	var b strings.Builder
	for _, r := range results {
		b.WriteString(r.String() + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
		_ = os.WriteFile(out, []byte(b.String()), 0o644)
	}
}
