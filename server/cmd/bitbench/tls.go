package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
func benchTLS(httpc *http.Client, ep, key, db, scratchURL string) error {
	if *endpoint != "" {
		fmt.Println("(f) HTTPS vs HTTP: skipped with --endpoint (it starts a bitd dev --tls of its own)")
		return nil
	}
	saved := wireAddr // the plain bitd's, for (e)
	stop, tep, tkey, tuser, tpid, err := startBitd(*databaseURL, "--tls")
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
	newH2 := func() *http.Client {
		return &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: conns,
			TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	// Go's HTTP/2 transport puts every request to one host on one
	// connection. The clients of (f) are separate clients (a browser tab, a
	// CLI, a Lambda instance each), so each gets a connection of its own;
	// the shared-connection case (one process with concurrent requests) is
	// measured beside it.
	h2own := make(chan *http.Client, concurrency)
	for range concurrency {
		h2own <- newH2()
	}
	h2 := newH2()
	h1 := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	// The reference gateway (reference.go) over plain HTTP and over HTTPS
	// with HTTP/2 on bitd dev's certificate: the ratio Go's own TLS and
	// HTTP/2 leave to a handler that does nothing else, in the same run.
	dir := filepath.Dir(caCert)
	refEP, refPID, stopRef, err := startReference(scratchURL)
	if err != nil {
		return err
	}
	defer stopRef()
	refTLS, refTLSPID, stopRefTLS, err := startReference(scratchURL,
		"BITBENCH_REFERENCE_TLS_CERT="+filepath.Join(dir, "localhost.pem"), "BITBENCH_REFERENCE_TLS_KEY="+filepath.Join(dir, "localhost-key.pem"))
	if err != nil {
		return err
	}
	defer stopRefTLS()
	refTLS = "https://localhost" + refTLS[strings.LastIndexByte(refTLS, ':'):]
	refOwn := make(chan *http.Client, concurrency)
	for range concurrency {
		refOwn <- newH2()
	}
	plainBody := fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT 1"}`, db)
	tlsBody := fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT 1"}`, tdb)
	runs := []struct {
		name string
		f    func() error
		pid  int // the bitd serving it, for CPU per request
		n    int
		secs float64
		cpu  time.Duration
		errs int
	}{
		{name: "HTTP/1.1 (plain)", pid: *bitdPID, f: func() error { _, err := post(httpc, ep, key, plainBody); return err }},
		{name: "HTTPS, HTTP/2", pid: tpid, f: func() error {
			c := <-h2own
			defer func() { h2own <- c }()
			_, err := post(c, tep, tkey, tlsBody)
			return err
		}},
		{name: "HTTPS, HTTP/1.1", pid: tpid, f: func() error { _, err := post(h1, tep, tkey, tlsBody); return err }},
		{name: "HTTPS, h2 shared", pid: tpid, f: func() error { _, err := post(h2, tep, tkey, tlsBody); return err }},
		{name: "reference, HTTP", pid: refPID, f: func() error { _, err := post(httpc, refEP, "", plainBody); return err }},
		{name: "reference, HTTP/2", pid: refTLSPID, f: func() error {
			c := <-refOwn
			defer func() { refOwn <- c }()
			_, err := post(c, refTLS, "", plainBody)
			return err
		}},
	}
	for i := range runs { // warm up: connections, handshakes, pools
		for range concurrency {
			if err := runs[i].f(); err != nil {
				return fmt.Errorf("%s: %w", runs[i].name, err)
			}
		}
	}
	per := *duration / tlsRounds
	if per < time.Second {
		per = time.Second
	}
	for range tlsRounds {
		for i := range runs {
			s := measureCPU(runs[i].pid, concurrency, per, runs[i].f)
			runs[i].n += len(s.lat)
			runs[i].secs += s.elapsed.Seconds()
			runs[i].cpu += s.cpu
			runs[i].errs += s.errs
			if s.errs > 0 {
				return fmt.Errorf("%s: %d requests failed; first: %v", runs[i].name, s.errs, s.firstErr)
			}
		}
	}
	rate := func(i int) float64 { return float64(runs[i].n) / runs[i].secs }
	cpuUs := func(i int) float64 { return float64(runs[i].cpu.Microseconds()) / float64(max(runs[i].n, 1)) }
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("(f) SELECT 1, %d concurrent clients, keep-alive: HTTPS (bitd dev --tls, ECDSA P-256) vs plain HTTP, %d alternating rounds; load average %s",
		concurrency, tlsRounds, load)
	for i := range runs {
		fmt.Printf("    %-17s %8.0f req/s  bitd CPU %5.0f µs/req\n", runs[i].name, rate(i), cpuUs(i))
	}
	fmt.Printf("    ratio HTTPS/HTTP req/s: HTTP/2 %.2f, HTTP/1.1 %.2f (goal ≥ 0.8); all %d clients on one HTTP/2 connection %.2f\n",
		rate(1)/rate(0), rate(2)/rate(0), concurrency, rate(3)/rate(0))
	fmt.Printf("    the same for the reference gateway (Go's TLS + HTTP/2 alone): HTTPS HTTP/2 / HTTP %.2f; bitd's HTTP/2 / the reference's HTTP/2 %.2f\n\n",
		rate(5)/rate(4), rate(1)/rate(5))
	return nil
}
