// Command bitbench measures bitd's query path against its physical limits,
// all in one run on the same machine, and prints the ratios:
//
//	(a) SELECT 1 over POST /v2beta/query (keep-alive, 8 concurrent clients)
//	    vs 8 direct pgx connections, and its latency vs a bare net/http
//	    handler (in-process httptest) answering the same bytes;
//	(b) 1,000,000 mixed-type rows streamed as NDJSON and decoded by
//	    core.QueryStream vs COPY (SELECT …) TO STDOUT read by pgx vs a pgx
//	    SELECT decoded into Go values;
//	(c) a parameterised point query, 8 concurrent, vs 8 direct pgx
//	    connections;
//	(d) SELECT 1 and the point query at 8 and 64 clients against a
//	    reference gateway (reference.go: net/http + pgxpool + the same
//	    JSON shape, no auth, lookup or reset, in a child process): bitd's
//	    req/s, p50 and p99 and CPU µs per request (from /proc) as ratios
//	    of the reference's;
//	(e) a read-modify-write transaction (SELECT … FOR UPDATE, UPDATE,
//	    INSERT) at 8 clients: HTTP interactive transaction vs the same as
//	    one batch vs pgx directly vs pgx through the wire proxy (tx.go);
//	(f) SELECT 1 at 8 keep-alive clients over HTTPS (a second bitd dev
//	    --tls; HTTP/2 and HTTP/1.1) vs plain HTTP, alternating, as ratios
//	    (tls.go);
//	(g) a 100k-row answer as JSON and as NDJSON, uncompressed vs gzip vs
//	    zstd (Accept-Encoding): bytes on the wire and bitd CPU per answer
//	    (compression.go);
//	(h) the point query on one PostgreSQL connection: the backend's CPU
//	    per query with bitd's unnamed statement and DISCARD ALL in one
//	    write, in two round trips, with a reset function in the statement's
//	    transaction, with a kept named statement and a reset that keeps it,
//	    and without resets (reset.go).
//
// Usage:
//
//	bitbench --database-url postgres://…            # starts ../bin/bitd dev --ephemeral
//	bitbench --endpoint URL --key KEY --database-url postgres://…
//
// The database URL (default $TEST_DATABASE_URL) must be a superuser: the
// direct pgx baselines run in a scratch database that bitbench creates and
// drops. The whole run takes about a minute.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/server/internal/benchbitd"
	"github.com/jackc/pgx/v5"
)

const (
	concurrency = 8
	pointRows   = 100_000
	bulkRows    = 1_000_000
)

// refClients are the client counts of the reference comparison (d).
var refClients = []int{8, 64}

var (
	endpoint    = flag.String("endpoint", "", "bitd endpoint (empty: start ../bin/bitd dev --ephemeral)")
	apiKey      = flag.String("key", "", "API key for --endpoint")
	databaseURL = flag.String("database-url", os.Getenv("TEST_DATABASE_URL"), "superuser URL of the PostgreSQL cluster bitd uses")
	duration    = flag.Duration("duration", 4*time.Second, "length of each throughput measurement")
	bitdPath    = flag.String("bitd", "", "bitd binary to start (default: ../bin/bitd, bin/bitd or ../../bin/bitd)")
	bitdArgs    = flag.String("bitd-args", "", "extra flags for the bitd bitbench starts, e.g. \"--pprof 127.0.0.1:6060\"")
	refQuery    = flag.String("reference-query", "", `with --reference-only: only this query ("select1" or "point", e.g. while profiling)`)
	bitdPID     = flag.Int("bitd-pid", 0, "process ID of the bitd at --endpoint, for CPU per request (default: the bitd bitbench starts)")
	onlyRef     = flag.Bool("reference-only", false, "run only the reference comparison (d)")
	refUnnamed  = flag.Bool("reference-unnamed", false, "the reference gateway runs every statement as the unnamed one (parsed and planned each time, as bitd must) instead of pgx's statement cache")
	refGateway  = flag.String("reference-gateway", "", "internal: serve the reference gateway on this address (database URL in $BITBENCH_REFERENCE_DB)")
)

func init() {
	flag.BoolVar(&txOnly, "tx-only", false, "run only the interactive-transaction comparison (e)")
	flag.StringVar(&wireAddr, "pg-addr", "", "wire proxy host:port of the bitd at --endpoint, for (e)")
}

func main() {
	flag.Parse()
	if *refGateway != "" {
		if err := serveReference(*refGateway, os.Getenv("BITBENCH_REFERENCE_DB")); err != nil {
			fmt.Fprintln(os.Stderr, "bitbench reference gateway:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bitbench:", err)
		os.Exit(1)
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run() error {
	if *databaseURL == "" {
		return errors.New("--database-url (or TEST_DATABASE_URL) is required: a superuser URL of the cluster, e.g. $(scripts/pg-up.sh)")
	}
	ctx := context.Background()
	ep, key, user := *endpoint, *apiKey, ""
	if ep == "" {
		stop, e, k, u, pid, err := startBitd(*databaseURL)
		if err != nil {
			return err
		}
		defer stop()
		ep, key, user = e, k, u
		*bitdPID = pid
	} else if key == "" {
		return errors.New("--key is required with --endpoint")
	}
	client, err := core.NewClient(ep, core.WithAPIKey(key))
	if err != nil {
		return err
	}
	if user == "" {
		acct, err := client.Account(ctx)
		if err != nil {
			return fmt.Errorf("find the key's account: %w", err)
		}
		user = acct.Name
	}
	dbShort := "bench" + randomSuffix()
	if _, err := client.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: dbShort}); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	db := user + "/" + dbShort
	defer func() { _ = client.DeleteDatabase(context.Background(), db) }()

	// The direct baselines use a scratch database with the same table.
	scratch := "bitbench_" + randomSuffix()
	if err := adminExec(ctx, *databaseURL, "CREATE DATABASE "+scratch); err != nil {
		return err
	}
	defer func() {
		_ = adminExec(context.Background(), *databaseURL, "DROP DATABASE IF EXISTS "+scratch+" WITH (FORCE)")
	}()
	scratchURL, err := withDatabase(*databaseURL, scratch)
	if err != nil {
		return err
	}
	setup := fmt.Sprintf(`CREATE TABLE points (id int PRIMARY KEY, name text NOT NULL, v double precision NOT NULL, at timestamptz NOT NULL);
INSERT INTO points SELECT g, 'point ' || g, g / 3.0, TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 minute' FROM generate_series(1, %d) g;
ANALYZE points`, pointRows)
	if err := adminExec(ctx, scratchURL, setup); err != nil {
		return err
	}
	if _, err := client.Query(ctx, db, setup); err != nil {
		return fmt.Errorf("create the bench table through bitd: %w", err)
	}

	fmt.Printf("bitbench: bitd %s, %d concurrent clients, %s per throughput run, GOMAXPROCS-bound machine\n\n", ep, concurrency, *duration)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * refClients[len(refClients)-1], MaxConnsPerHost: 2 * refClients[len(refClients)-1]}}
	if *onlyRef {
		return compareReference(httpc, ep, key, db, scratchURL)
	}
	if txOnly {
		return benchTx(httpc, ep, key, db, scratchURL)
	}
	if tlsOnly {
		return benchTLS(httpc, ep, key, db, scratchURL)
	}
	if compOnly {
		return compareCompression(ep, key, db, *bitdPID)
	}
	if resetOnly {
		return benchReset(scratchURL)
	}

	// (a) SELECT 1.
	selectBody := fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT 1"}`, db)
	answer, err := post(httpc, ep, key, selectBody)
	if err != nil {
		return err
	}
	apiA := measure(*duration, func() error { _, err := post(httpc, ep, key, selectBody); return err })
	pgA, err := measurePgx(ctx, scratchURL, *duration, func(c *pgx.Conn) error {
		var one int
		return c.QueryRow(ctx, "SELECT 1").Scan(&one)
	})
	if err != nil {
		return err
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	bareA := measure(*duration, func() error { _, err := post(httpc, bare.URL, key, selectBody); return err })
	bare.Close()
	fmt.Println("(a) SELECT 1, 8 concurrent, keep-alive")
	fmt.Printf("    bitd POST /query   %8.0f req/s  p50 %-9s p99 %s\n", apiA.rate(), apiA.pct(50), apiA.pct(99))
	fmt.Printf("    direct pgx         %8.0f req/s  p50 %-9s p99 %s\n", pgA.rate(), pgA.pct(50), pgA.pct(99))
	fmt.Printf("    bare net/http      %8.0f req/s  p50 %-9s p99 %s\n", bareA.rate(), bareA.pct(50), bareA.pct(99))
	fmt.Printf("    ratio bitd/pgx req/s %.2f; latency p50 bitd/bare %.2f, p99 bitd/bare %.2f\n\n",
		apiA.rate()/pgA.rate(), ratio(apiA.pct(50), bareA.pct(50)), ratio(apiA.pct(99), bareA.pct(99)))

	// (b) 1M mixed rows.
	bulk := fmt.Sprintf(`SELECT g AS id, md5(g::text) AS name, g / 7.0 AS ratio, TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 second' AS at, g %% 2 = 0 AS even, ARRAY[g, NULL] AS arr
FROM (SELECT generate_series(1, %d) AS g) s`, bulkRows)
	tStream, nStream, err := timeStream(ctx, client, db, bulk)
	if err != nil {
		return err
	}
	tCopy, bCopy, err := timeCopy(ctx, scratchURL, bulk)
	if err != nil {
		return err
	}
	tSelect, err := timeSelect(ctx, scratchURL, bulk)
	if err != nil {
		return err
	}
	fmt.Printf("(b) %d mixed-type rows (int, text, numeric, timestamptz, bool, int[])\n", bulkRows)
	fmt.Printf("    NDJSON via bitd, decoded by core.QueryStream  %7.2fs  %9.0f rows/s  (%d rows)\n", tStream.Seconds(), bulkRows/tStream.Seconds(), nStream)
	fmt.Printf("    COPY (SELECT …) TO STDOUT via pgx             %7.2fs  %9.0f rows/s  (%d MB)\n", tCopy.Seconds(), bulkRows/tCopy.Seconds(), bCopy>>20)
	fmt.Printf("    pgx SELECT decoded into Go values             %7.2fs  %9.0f rows/s\n", tSelect.Seconds(), bulkRows/tSelect.Seconds())
	fmt.Printf("    ratio stream/pgx-SELECT throughput %.2f (goal ≥ 0.5), stream/COPY %.2f\n\n", tSelect.Seconds()/tStream.Seconds(), tCopy.Seconds()/tStream.Seconds())

	// (c) point query.
	pointTmpl := `{"database_name":%q,"query_string":"SELECT id, name, v, at FROM points WHERE id = $1","params":[%d]}`
	apiC := measure(*duration, func() error {
		_, err := post(httpc, ep, key, fmt.Sprintf(pointTmpl, db, 1+mrand.IntN(pointRows)))
		return err
	})
	pgC, err := measurePgx(ctx, scratchURL, *duration, func(c *pgx.Conn) error {
		var id int
		var name string
		var v float64
		var at time.Time
		return c.QueryRow(ctx, "SELECT id, name, v, at FROM points WHERE id = $1", 1+mrand.IntN(pointRows)).Scan(&id, &name, &v, &at)
	})
	if err != nil {
		return err
	}
	fmt.Println("(c) parameterised point query, 8 concurrent")
	fmt.Printf("    bitd POST /query   %8.0f req/s  p50 %-9s p99 %s\n", apiC.rate(), apiC.pct(50), apiC.pct(99))
	fmt.Printf("    direct pgx         %8.0f req/s  p50 %-9s p99 %s\n", pgC.rate(), pgC.pct(50), pgC.pct(99))
	fmt.Printf("    ratio bitd/pgx req/s %.2f\n\n", apiC.rate()/pgC.rate())
	for _, m := range []*stats{apiA, bareA, apiC} {
		if m.errs > 0 {
			return fmt.Errorf("%d requests failed during the run; first: %v", m.errs, m.firstErr)
		}
	}
	if err := compareReference(httpc, ep, key, db, scratchURL); err != nil {
		return err
	}
	if err := benchTx(httpc, ep, key, db, scratchURL); err != nil {
		return err
	}
	if err := benchTLS(httpc, ep, key, db, scratchURL); err != nil {
		return err
	}
	if err := compareCompression(ep, key, db, *bitdPID); err != nil {
		return err
	}
	return benchReset(scratchURL)
}

// compareReference runs (d): bitd against the reference gateway, both on
// the same table, at each of refClients.
func compareReference(httpc *http.Client, ep, key, db, scratchURL string) error {
	refEP, refPID, stopRef, err := startReference(scratchURL)
	if err != nil {
		return err
	}
	defer stopRef()
	queries := []struct {
		name string
		body func(db string) string
	}{
		{"SELECT 1", func(db string) string {
			return fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT 1"}`, db)
		}},
		{"point query", func(db string) string {
			return fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT id, name, v, at FROM points WHERE id = $1","params":[%d]}`, db, 1+mrand.IntN(pointRows))
		}},
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("(d) bitd vs the reference gateway (net/http + pgxpool of %d, same JSON, no auth/lookup/reset); load average %s", referencePoolConns, load)
	for _, q := range queries {
		if *refQuery != "" && !strings.HasPrefix(strings.ToLower(strings.ReplaceAll(q.name, " ", "")), strings.ToLower(*refQuery)) {
			continue
		}
		for _, n := range refClients {
			b := measureCPU(*bitdPID, n, *duration, func() error { _, err := post(httpc, ep, key, q.body(db)); return err })
			r := measureCPU(refPID, n, *duration, func() error { _, err := post(httpc, refEP, "", q.body(db)); return err })
			for _, m := range []*stats{b, r} {
				if m.errs > 0 {
					return fmt.Errorf("%s at %d clients: %d requests failed; first: %v", q.name, n, m.errs, m.firstErr)
				}
			}
			fmt.Printf("    %-11s %2d clients  bitd %7.0f req/s p50 %-8s p99 %-8s %4.0f µs CPU/req | reference %7.0f req/s p50 %-8s p99 %-8s %4.0f µs CPU/req\n",
				q.name, n, b.rate(), b.pct(50), b.pct(99), b.cpuPerReq(), r.rate(), r.pct(50), r.pct(99), r.cpuPerReq())
			fmt.Printf("    %-11s %2d clients  ratios bitd/reference: req/s %.2f  p50 %.2f  p99 %.2f  CPU/req %.2f\n",
				q.name, n, b.rate()/r.rate(), ratio(b.pct(50), r.pct(50)), ratio(b.pct(99), r.pct(99)), b.cpuPerReq()/r.cpuPerReq())
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("    load average after: %s", load)
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}

func post(c *http.Client, ep, key, body string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, ep+"/v2beta/query", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return b, nil
}

// stats collects the latencies of one throughput run.
type stats struct {
	mu       sync.Mutex
	lat      []time.Duration
	elapsed  time.Duration
	errs     int
	firstErr error
	cpu      time.Duration // CPU time of the measured server process (measureCPU)
}

// cpuPerReq is the server's CPU µs per request (NaN when unknown).
func (s *stats) cpuPerReq() float64 {
	if s.cpu == 0 || len(s.lat) == 0 {
		return math.NaN()
	}
	return float64(s.cpu.Microseconds()) / float64(len(s.lat))
}

// measureCPU is measureN that also records the CPU time process pid used.
func measureCPU(pid, clients int, d time.Duration, f func() error) *stats {
	before := cpuTime(pid)
	s := measureN(clients, d, f)
	s.cpu = cpuTime(pid) - before
	return s
}

func (s *stats) rate() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func (s *stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(s.lat)))) - 1
	return s.lat[max(0, min(i, len(s.lat)-1))].Round(time.Microsecond)
}

// measure runs f from 8 goroutines for d.
func measure(d time.Duration, f func() error) *stats { return measureN(concurrency, d, f) }

// measureN runs f from clients goroutines for d.
func measureN(clients int, d time.Duration, f func() error) *stats {
	s := &stats{}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var local []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := f()
				local = append(local, time.Since(t0))
				if err != nil {
					s.mu.Lock()
					if s.errs == 0 {
						s.firstErr = err
					}
					s.errs++
					s.mu.Unlock()
				}
			}
			s.mu.Lock()
			s.lat = append(s.lat, local...)
			s.mu.Unlock()
		})
	}
	wg.Wait()
	s.elapsed = time.Since(start)
	sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] })
	return s
}

// measurePgx runs f on 8 direct connections to dbURL for d.
func measurePgx(ctx context.Context, dbURL string, d time.Duration, f func(*pgx.Conn) error) (*stats, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	return measurePgxConfig(ctx, cfg, d, f)
}

func timeStream(ctx context.Context, c *core.Client, db, sql string) (time.Duration, int64, error) {
	start := time.Now()
	s, err := c.QueryStream(ctx, core.QueryRequest{Database: db, SQL: sql, Timeout: 10 * time.Minute})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	var n int64
	for s.Next() {
		if len(s.Row().Values()) != 6 {
			return 0, 0, errors.New("stream row without 6 values")
		}
		n++
	}
	if err := s.Err(); err != nil {
		return 0, 0, err
	}
	if n != bulkRows {
		return 0, 0, fmt.Errorf("streamed %d rows, want %d", n, bulkRows)
	}
	return time.Since(start), n, nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func timeCopy(ctx context.Context, dbURL, sql string) (time.Duration, int64, error) {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close(context.Background())
	start := time.Now()
	var w countWriter
	if _, err := c.PgConn().CopyTo(ctx, &w, "COPY ("+sql+") TO STDOUT"); err != nil {
		return 0, 0, err
	}
	return time.Since(start), w.n, nil
}

func timeSelect(ctx context.Context, dbURL, sql string) (time.Duration, error) {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	start := time.Now()
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return 0, err
		}
		if len(vals) != 6 {
			return 0, errors.New("pgx row without 6 values")
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n != bulkRows {
		return 0, fmt.Errorf("pgx read %d rows", n)
	}
	return time.Since(start), nil
}

func adminExec(ctx context.Context, dbURL, sql string) error {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to the cluster: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%.60s: %w", sql, err)
	}
	return nil
}

func withDatabase(dbURL, db string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil || u.Scheme == "" {
		return "", errors.New("--database-url must be a postgres:// URL")
	}
	u.Path = "/" + db
	return u.String(), nil
}

// startBitd runs `bitd dev --ephemeral` against the cluster and returns its
// endpoint, the demo user's API key and name, and a function that stops it.
func startBitd(dbURL string, extra ...string) (stop func(), ep, key, user string, pid int, err error) {
	bin, err := benchbitd.Find(*bitdPath)
	if err != nil {
		return nil, "", "", "", 0, fmt.Errorf("%w (or pass --endpoint/--key)", err)
	}
	args := append([]string{"--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"}, strings.Fields(*bitdArgs)...)
	d, err := benchbitd.Start(bin, dbURL, append(args, extra...)...)
	if err != nil {
		return nil, "", "", "", 0, err
	}
	wireAddr = d.Env["BITKIT_PG_ADDR"]
	caCert = d.Env["BITKIT_CA_CERT"]
	return d.Stop, d.Env["BITKIT_ENDPOINT"], d.Env["BITKIT_API_KEY"], d.Env["BITKIT_DEMO_USER"], d.Pid, nil
}
