// Command bitbench-create measures how long creating a database takes, in
// one run on one machine:
//
//	(a) a bare CREATE DATABASE over pgx, as the cluster's admin, with each
//	    of PostgreSQL's strategies (WAL_LOG, the default since 15, and
//	    FILE_COPY), one at a time and 50 at once: the physical floor;
//	    The test cluster usually runs with fsync off, which flatters
//	    FILE_COPY (two checkpoints per creation): the same is timed on a
//	    private cluster with fsync on, idle and under a writer;
//	(b) POST /v2beta/db/ on a bitd without a stock (--db-stock 0): every
//	    creation provisions its database and roles while the caller waits;
//	(c) the same on a bitd with the default stock (--db-stock 4), then a
//	    second burst once the stock has grown to the target the first
//	    burst raised (at most --db-stock-max, 64 by default);
//	(d) the same on a bitd whose stock covers the burst (--db-stock 64),
//	    filled before the burst starts.
//
// Each line gives p50 and p99 of the latency seen by the caller, one
// creator (-n creations in a row) and 50 at once (one each).
//
// Usage:
//
//	bitbench-create --database-url postgres://…   # starts ../bin/bitd dev --ephemeral per section
//
// The database URL (default $TEST_DATABASE_URL) must be a superuser's (or
// CREATEDB): (a) creates and drops scratch databases.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/benchbitd"
	"github.com/bitkit-dev/bitkit/server/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

var (
	databaseURL = flag.String("database-url", os.Getenv("TEST_DATABASE_URL"), "superuser URL of the PostgreSQL cluster")
	bitdPath    = flag.String("bitd", "", "bitd binary (default: ../bin/bitd, bin/bitd or ../../bin/bitd)")
	sequential  = flag.Int("n", 20, "creations in a row for the one-creator figures")
	burst       = flag.Int("concurrent", 50, "creators at once for the burst figures")
	bigStock    = flag.Int("stock", 64, "--db-stock of section (d); at least --concurrent")
	private     = flag.Bool("private-cluster", true, "also time bare creation on a private cluster with fsync=on (needs PostgreSQL's binaries)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bitbench-create:", err)
		os.Exit(1)
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lat is a set of latencies.
type lat []time.Duration

func (l lat) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(lat(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func (l lat) String() string {
	return fmt.Sprintf("p50 %-8s p99 %-8s (n=%d)", round(l.pct(50)), round(l.pct(99)), len(l))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	default:
		return d.Round(10 * time.Microsecond)
	}
}

// timeAll runs f n times with conc at once and returns the latencies.
func timeAll(n, conc int, f func(i int) error) (lat, error) {
	var mu sync.Mutex
	var out lat
	var firstErr error
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			err := f(i)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out = append(out, d)
		}()
	}
	wg.Wait()
	return out, firstErr
}

func run() error {
	if *databaseURL == "" {
		return errors.New("--database-url (or TEST_DATABASE_URL) is required: a superuser URL of the cluster, e.g. $(scripts/pg-up.sh)")
	}
	if *bigStock < *burst {
		return fmt.Errorf("--stock (%d) must be at least --concurrent (%d)", *bigStock, *burst)
	}
	ctx := context.Background()
	fmt.Printf("bitbench-create: %d creations in a row, then %d at once; goal: bitd's p99 at %d at once <= 1s\n\n", *sequential, *burst, *burst)

	var fsync string
	if err := queryOne(ctx, *databaseURL, "SHOW fsync", &fsync); err != nil {
		return err
	}
	fmt.Printf("(a) bare CREATE DATABASE (pgx, admin), on the cluster of --database-url (fsync=%s)\n", fsync)
	if err := bareCreate(ctx, *databaseURL, false); err != nil {
		return err
	}
	if *private {
		dir, err := os.MkdirTemp("", "bitbench-create-pg-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c, err := pgcluster.Start(ctx, filepath.Join(dir, "pg"), filepath.Join(dir, "postgres.log"))
		if err != nil {
			return fmt.Errorf("start a private cluster (--private-cluster=false skips it): %w", err)
		}
		defer c.Stop(30 * time.Second)
		fmt.Println("(a') the same on a private cluster with PostgreSQL's default durability (fsync=on), idle")
		if err := bareCreate(ctx, c.URL, false); err != nil {
			return err
		}
		fmt.Println("(a'') the same while a tenant writes (a loop of 20,000-row INSERTs: dirty buffers for FILE_COPY's checkpoints)")
		if err := bareCreate(ctx, c.URL, true); err != nil {
			return err
		}
	}
	fmt.Println()

	sections := []struct {
		title string
		stock int
	}{
		{"(b) POST /v2beta/db/, no stock (--db-stock 0)", 0},
		{"(c) POST /v2beta/db/, default stock (--db-stock 4)", 4},
		{fmt.Sprintf("(d) POST /v2beta/db/, stock covering the burst (--db-stock %d)", *bigStock), *bigStock},
	}
	for _, sec := range sections {
		fmt.Println(sec.title)
		if err := benchBitd(ctx, sec.stock); err != nil {
			return err
		}
		fmt.Println()
	}
	return nil
}

// bareCreate times CREATE DATABASE with each strategy, one creator and
// --concurrent at once, optionally while a writer dirties buffers.
func bareCreate(ctx context.Context, url string, writer bool) error {
	if writer {
		scratch := "bench_w_" + randomSuffix()
		if err := adminExec(ctx, url, "CREATE DATABASE "+scratch); err != nil {
			return err
		}
		defer func() { _ = adminExec(context.Background(), url, "DROP DATABASE IF EXISTS "+scratch+" WITH (FORCE)") }()
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			return err
		}
		cfg.Database = scratch
		wc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		if _, err := wc.Exec(ctx, "CREATE TABLE w (id int, v text)"); err != nil {
			return err
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for wctx.Err() == nil {
				_, _ = wc.Exec(wctx, "INSERT INTO w SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
			}
		}()
		defer func() { cancel(); <-done; wc.Close(context.Background()) }()
		time.Sleep(time.Second)
	}
	for _, strategy := range []string{"WAL_LOG", "FILE_COPY"} {
		var names []string
		var mu sync.Mutex
		create := func(int) error {
			name := "bench_cr_" + randomSuffix()
			mu.Lock()
			names = append(names, name)
			mu.Unlock()
			return adminExec(ctx, url, "CREATE DATABASE "+name+" STRATEGY "+strategy)
		}
		one, err1 := timeAll(*sequential, 1, create)
		many, err2 := timeAll(*burst, *burst, create)
		for _, n := range names {
			_ = adminExec(ctx, url, "DROP DATABASE IF EXISTS "+n)
		}
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		fmt.Printf("    bare %-10s 1 creator  %s\n", strategy, one)
		fmt.Printf("    bare %-10s %d at once %s\n", strategy, *burst, many)
	}
	return nil
}

func queryOne(ctx context.Context, url, sql string, dest any) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to the cluster: %w", err)
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, sql).Scan(dest)
}

// benchBitd starts a bitd with the given stock and measures POST /db/.
func benchBitd(ctx context.Context, stock int) error {
	b, err := startBitd(*databaseURL, "--db-stock", fmt.Sprint(stock), "--max-databases-per-account", "0")
	if err != nil {
		return err
	}
	defer b.stop()
	httpc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *burst, MaxConnsPerHost: *burst}}
	create := func(name string) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", b.endpoint+"/v2beta/db/", strings.NewReader(`{"name":"`+name+`"}`))
		req.Header.Set("Authorization", "Bearer "+b.key)
		req.Header.Set("Content-Type", "application/json")
		res, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /v2beta/db/ %s: %d %s", name, res.StatusCode, body)
		}
		return nil
	}
	// The stock starts filling once the store has had a database.
	if err := create("warmup"); err != nil {
		return err
	}
	waitStock := func() error {
		if stock == 0 {
			return nil
		}
		deadline := time.Now().Add(10 * time.Minute)
		for time.Now().Before(deadline) {
			n, err := b.stockReady(ctx)
			if err != nil {
				return err
			}
			if n >= stock {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("the stock of %d did not fill within 10 minutes", stock)
	}
	if err := waitStock(); err != nil {
		return err
	}
	one, err := timeAll(*sequential, 1, func(i int) error { return create(fmt.Sprintf("one%03d", i)) })
	if err != nil {
		return err
	}
	fmt.Printf("    bitd POST /db/ 1 creator  %s\n", one)
	if err := waitStock(); err != nil {
		return err
	}
	many, err := timeAll(*burst, *burst, func(i int) error { return create(fmt.Sprintf("many%03d", i)) })
	if err != nil {
		return err
	}
	fmt.Printf("    bitd POST /db/ %d at once %s\n", *burst, many)
	if stock == 0 {
		return nil
	}
	// The burst raised the stock target (to the burst's size, up to
	// --db-stock-max): once the stock has
	// refilled to it, a second burst of the same size.
	target, err := b.stockTarget(ctx)
	if err != nil {
		return err
	}
	if target <= stock {
		return nil
	}
	stock = target
	if err := waitStock(); err != nil {
		return err
	}
	many2, err := timeAll(*burst, *burst, func(i int) error { return create(fmt.Sprintf("again%03d", i)) })
	if err != nil {
		return err
	}
	fmt.Printf("    bitd POST /db/ %d at once %s  (a second burst: the stock had grown to %d)\n", *burst, many2, target)
	return nil
}

// stockTarget is the default cluster's stock target as the last burst
// left it (db_stock_targets; 0 when no burst raised it).
func (b *bitd) stockTarget(ctx context.Context) (int, error) {
	cfg, err := pgx.ParseConfig(*databaseURL)
	if err != nil {
		return 0, err
	}
	cfg.Database = b.meta
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, `SELECT coalesce((SELECT target FROM db_stock_targets WHERE placement = 'default'), 0)`).Scan(&n) // at most --db-stock-max
	return n, err
}

func adminExec(ctx context.Context, url, sql string) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to the cluster: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(sql)[0]+" "+strings.Fields(sql)[1], err)
	}
	return nil
}

type bitd struct {
	endpoint, key, meta string
	stop                func()
}

// stockReady counts the ready databases in the stock of the bitd's
// metadata store.
func (b *bitd) stockReady(ctx context.Context) (int, error) {
	cfg, err := pgx.ParseConfig(*databaseURL)
	if err != nil {
		return 0, err
	}
	cfg.Database = b.meta
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, `SELECT count(*) FROM db_stock WHERE ready`).Scan(&n)
	return n, err
}

func startBitd(dbURL string, extra ...string) (*bitd, error) {
	bin, err := benchbitd.Find(*bitdPath)
	if err != nil {
		return nil, err
	}
	d, err := benchbitd.Start(bin, dbURL, append([]string{"--http", "127.0.0.1:0", "--pg", ""}, extra...)...)
	if err != nil {
		return nil, err
	}
	return &bitd{endpoint: d.Env["BITKIT_ENDPOINT"], key: d.Env["BITKIT_API_KEY"], meta: d.Meta, stop: d.Stop}, nil
}
