package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

var tlsOnly bool

// caCert is BITKIT_CA_CERT of the last bitd startBitd started ("" without
// --tls).
var caCert string

func init() {
	flag.BoolVar(&tlsOnly, "tls-only", false, "run only the HTTPS vs HTTP comparison (f)")
}

// tlsRounds is how many times (f) alternates its three measurements, so
// that a change of machine load touches all of them alike.
const tlsRounds = 3

// benchTLS runs (f): SELECT 1 at 8 keep-alive clients against the bitd at ep
// over plain HTTP and against a second `bitd dev --tls` (same binary, same
// cluster) over HTTPS with HTTP/2 (what Go, curl and browsers pick) and with
// HTTP/1.1, alternating, and prints HTTPS/HTTP as ratios. It needs the bitd
// bitbench starts (not --endpoint).
func benchTLS(httpc *http.Client, ep, key, db string) error {
	if *endpoint != "" {
		fmt.Println("(f) HTTPS vs HTTP: skipped with --endpoint (it starts a bitd dev --tls of its own)")
		return nil
	}
	saved := wireAddr // the plain bitd's, for (e)
	stop, tep, tkey, tuser, _, err := startBitd(*databaseURL, "--tls")
	wireAddr = saved
	if err != nil {
		return fmt.Errorf("start bitd dev --tls: %w", err)
	}
	defer stop()
	caPEM, err := os.ReadFile(caCert)
	if err != nil {
		return fmt.Errorf("the dev CA of bitd dev --tls: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tc, err := core.NewClient(tep, core.WithAPIKey(tkey), core.WithRootCAs(pool))
	if err != nil {
		return err
	}
	short := "benchtls" + randomSuffix()
	if _, err := tc.CreateDatabase(context.Background(), core.CreateDatabaseRequest{Name: short}); err != nil {
		return fmt.Errorf("create the HTTPS bench database: %w", err)
	}
	tdb := tuser + "/" + short
	defer func() { _ = tc.DeleteDatabase(context.Background(), tdb) }()

	conns := 2 * concurrency
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: conns,
		TLSClientConfig: &tls.Config{RootCAs: pool}}}
	h1 := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	plainBody := fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT 1"}`, db)
	tlsBody := fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT 1"}`, tdb)
	runs := []struct {
		name string
		f    func() error
		n    int
		secs float64
		errs int
	}{
		{name: "HTTP/1.1 (plain)", f: func() error { _, err := post(httpc, ep, key, plainBody); return err }},
		{name: "HTTPS, HTTP/2", f: func() error { _, err := post(h2, tep, tkey, tlsBody); return err }},
		{name: "HTTPS, HTTP/1.1", f: func() error { _, err := post(h1, tep, tkey, tlsBody); return err }},
	}
	for i := range runs { // warm up: connections, handshakes, pools
		if err := runs[i].f(); err != nil {
			return fmt.Errorf("%s: %w", runs[i].name, err)
		}
	}
	per := *duration / tlsRounds
	if per < time.Second {
		per = time.Second
	}
	for range tlsRounds {
		for i := range runs {
			s := measureN(concurrency, per, runs[i].f)
			runs[i].n += len(s.lat)
			runs[i].secs += s.elapsed.Seconds()
			runs[i].errs += s.errs
			if s.errs > 0 {
				return fmt.Errorf("%s: %d requests failed; first: %v", runs[i].name, s.errs, s.firstErr)
			}
		}
	}
	rate := func(i int) float64 { return float64(runs[i].n) / runs[i].secs }
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("(f) SELECT 1, %d concurrent clients, keep-alive: HTTPS (bitd dev --tls, ECDSA P-256) vs plain HTTP, %d alternating rounds; load average %s",
		concurrency, tlsRounds, load)
	for i := range runs {
		fmt.Printf("    %-17s %8.0f req/s\n", runs[i].name, rate(i))
	}
	fmt.Printf("    ratio HTTPS/HTTP req/s: HTTP/2 %.2f, HTTP/1.1 %.2f (goal ≥ 0.8)\n\n", rate(1)/rate(0), rate(2)/rate(0))
	return nil
}
