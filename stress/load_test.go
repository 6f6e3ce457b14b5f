package stress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// long reports whether the long versions run (make stress).
func long() bool { return os.Getenv("BITKIT_STRESS") != "" }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// loadSize is a load test's clients and duration: short by default, 200
// clients for 60 s under make stress, and prefix+"_CLIENTS" and
// prefix+"_SECONDS" from the environment over both.
func loadSize(prefix string, clients int, dur time.Duration) (int, time.Duration) {
	if long() {
		clients, dur = 200, 60*time.Second
	}
	clients = envInt(prefix+"_CLIENTS", clients)
	if v := envInt(prefix+"_SECONDS", 0); v > 0 {
		dur = time.Duration(v) * time.Second
	}
	return clients, dur
}

// checkAcked checks that every write a client saw acknowledged is in
// table w (client, seq) of db: acked[i] are client i's sequence numbers.
// It returns how many there were.
func checkAcked(t *testing.T, c *client, db string, acked [][]int) int {
	t.Helper()
	n := 0
	for i, seqs := range acked {
		n += len(seqs)
		if len(seqs) == 0 {
			continue
		}
		r := c.mustQuery(t, db, "select count(*) from w where client = $1 and seq = any($2::int[])", i, seqs)
		if !bytes.Contains(r.Raw, []byte(fmt.Sprintf("[[%d]]", len(seqs)))) {
			t.Errorf("client %d: %d acknowledged writes, table has %s", i, len(seqs), r.Raw)
		}
	}
	return n
}

// opStats collects latencies and statuses of one kind of operation.
type opStats struct {
	mu        sync.Mutex
	lat       []time.Duration
	statuses  map[int]int
	retryLess int // 429/503 answers without Retry-After
}

func (o *opStats) add(d time.Duration, status int, h http.Header) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.statuses == nil {
		o.statuses = map[int]int{}
	}
	o.lat = append(o.lat, d)
	o.statuses[status]++
	if (status == 429 || status == 503) && h.Get("Retry-After") == "" {
		o.retryLess++
	}
}

func (o *opStats) pct(p float64) time.Duration {
	if len(o.lat) == 0 {
		return 0
	}
	s := slices.Clone(o.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// rss returns the resident set size of pid in KiB (VmRSS), or 0.
func rss(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}

// TestMixedLoad runs concurrent clients doing queries, streams, writes,
// database CRUD and logins against one bitd. No answer may be a 5xx, every
// acknowledged write must be there afterwards, and 429/503 must carry
// Retry-After. make test: 32 clients for 8 s; make stress: 200 for 60 s.
func TestMixedLoad(t *testing.T) {
	clients, dur := loadSize("BITKIT_LOAD", 32, 8*time.Second)

	s := startScanned(t)
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "load", true)
	c.mustQuery(t, db, "create table w (client int, seq int, primary key (client, seq))")
	c.mustQuery(t, db, "create table r as select g as id, md5(g::text) as v from generate_series(1, 2000) g")
	user, pass := "loader"+randSuffix(), "pw-"+randSuffix()+randSuffix()
	s.NewUser(t, user, pass)
	remember(pass)

	stats := map[string]*opStats{"query": {}, "write": {}, "stream": {}, "crud": {}, "login": {}}
	acked := make([][]int, clients)
	var fivexx atomic.Int64
	var firstErr atomic.Value

	stop := time.Now().Add(dur)
	var peakRSS atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			if k := rss(s.Pid(), "VmRSS"); int64(k) > peakRSS.Load() {
				peakRSS.Store(int64(k))
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(s.Endpoint, s.APIKey)
			seq := 0
			for n := 0; time.Now().Before(stop); n++ {
				var op string
				var status int
				var hdr http.Header
				t0 := time.Now()
				var err error
				switch n % 10 {
				case 0, 1, 2, 3:
					op = "query"
					var r result
					r, err = cl.doE("POST", "/v2beta/query", map[string]any{"database_name": db,
						"query_string": "select id, v from r where id = $1", "params": []any{n%2000 + 1}})
					status, hdr = r.Status, r.Header
					if err == nil && status == 200 && !bytes.Contains(r.Raw, []byte(`"row_count":1`)) {
						err = fmt.Errorf("point query answered %s", r.Raw)
					}
				case 4, 5, 6:
					op = "write"
					seq++
					var r result
					r, err = cl.doE("POST", "/v2beta/query", map[string]any{"database_name": db,
						"query_string": "insert into w values ($1, $2)", "params": []any{i, seq}})
					status, hdr = r.Status, r.Header
					if err == nil && status == 200 {
						acked[i] = append(acked[i], seq)
					}
				case 7:
					op = "stream"
					status, hdr, err = streamCount(cl, db, "select id, v from r", 2000)
				case 8:
					op = "crud"
					name := fmt.Sprintf("c%d_%d", i, n)
					var r result
					r, err = cl.doE("POST", "/v2beta/db/", map[string]any{"name": name})
					status, hdr = r.Status, r.Header
					if err == nil && status < 300 {
						var d result
						d, err = cl.doE("DELETE", "/v2beta/db/"+r.str("name"), nil)
						if err == nil && d.Status >= 500 {
							status, hdr = d.Status, d.Header
						}
					}
				case 9:
					op = "login"
					var r result
					anon := newClient(s.Endpoint, "")
					r, err = anon.doE("POST", "/auth/v1/login", map[string]any{"username": user, "password": pass})
					status, hdr = r.Status, r.Header
					if err == nil && status == 200 {
						remember(r.str("access_token"))
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", op, err))
					status = 599
				}
				if status >= 500 {
					fivexx.Add(1)
				}
				stats[op].add(time.Since(t0), status, hdr)
			}
		}()
	}
	wg.Wait()
	close(done)

	if e := firstErr.Load(); e != nil {
		t.Errorf("first client-side error: %v", e)
	}
	total := 0
	for name, st := range stats {
		total += len(st.lat)
		t.Logf("%-6s n=%6d p50=%8v p99=%8v statuses=%v", name, len(st.lat), st.pct(0.50).Round(time.Microsecond), st.pct(0.99).Round(time.Microsecond), st.statuses)
		if st.retryLess > 0 {
			t.Errorf("%s: %d answers of 429/503 without Retry-After", name, st.retryLess)
		}
	}
	if n := fivexx.Load(); n > 0 {
		t.Errorf("%d answers were 5xx or transport errors", n)
	}
	// Zero lost writes: every acknowledged (client, seq) is in the table, and
	// nothing is there that was not attempted.
	want := checkAcked(t, c, db, acked)
	rps := float64(total) / dur.Seconds()
	t.Logf("%d clients, %v: %d requests (%.0f/s), %d acknowledged writes, bitd peak RSS %d MiB", clients, dur, total, rps, want, peakRSS.Load()/1024)
	record(t, fmt.Sprintf("%d clients × %v mixed load (point queries, writes, streams, DB create/delete, logins)", clients, dur),
		fmt.Sprintf("%.0f req/s; query p50 %v p99 %v; %d 5xx or transport errors; %d acknowledged writes all present; bitd peak RSS %d MiB",
			rps, stats["query"].pct(0.5).Round(time.Microsecond), stats["query"].pct(0.99).Round(time.Microsecond), fivexx.Load(), want, peakRSS.Load()/1024))
	// Memory bound: a few hundred MiB at most for this workload, whatever its length.
	if peak := peakRSS.Load(); peak > 1<<20 {
		t.Errorf("bitd peak RSS %d MiB exceeds 1 GiB", peak/1024)
	}
}

// streamCount runs an NDJSON query and checks that exactly want rows and a
// trailer with row_count arrive.
func streamCount(cl *client, db, sql string, want int) (int, http.Header, error) {
	body, _ := json.Marshal(map[string]any{"database_name": db, "query_string": sql})
	req, _ := http.NewRequest("POST", cl.endpoint+"/v2beta/query", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cl.key)
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, resp.Header, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines := 0
	var last []byte
	for sc.Scan() {
		lines++
		last = append(last[:0], sc.Bytes()...)
	}
	if err := sc.Err(); err != nil {
		return 200, resp.Header, err
	}
	if lines != want+2 || !bytes.Contains(last, []byte(`"row_count":`+strconv.Itoa(want))) {
		return 200, resp.Header, fmt.Errorf("stream: %d lines, trailer %s", lines, last)
	}
	return 200, resp.Header, nil
}
