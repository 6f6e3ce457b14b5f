// Package metrics holds bitd's Prometheus registry: the counters and
// histograms the request, login and job paths update, and collectors that
// read the other components' own statistics (pools, wire proxy, access
// cache, job queue) when Prometheus scrapes, so that those paths pay
// nothing for being measured.
//
// Every method of a nil *Metrics does nothing, so components built without
// metrics (tests, `bitd admin`) need no checks.
//
// Label values are bounded: HTTP routes are the router's patterns (never a
// raw path), job kinds and states and HTTP error codes are the API's fixed
// words.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is bitd's registry and the metrics updated as events happen.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpBytes    *prometheus.CounterVec
	httpErrors   *prometheus.CounterVec
	queryRows    prometheus.Counter
	loginFails   prometheus.Counter
	loginLimited *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	jobRows      *prometheus.CounterVec
	jobBytes     *prometheus.CounterVec
	draining     prometheus.Gauge
}

// New returns a registry with bitd's metrics, the Go runtime's and the
// process's.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bitd_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bitd_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer (a stream: its last row), by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		httpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bitd_http_response_bytes_total",
			Help: "Bytes of HTTP answer bodies, by route pattern (the query routes: query result bytes).",
		}, []string{"route"}),
		httpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bitd_http_errors_total",
			Help: "HTTP error answers by route pattern and error code (the JSON body's \"code\": not_found, query_timeout, database_busy, ...).",
		}, []string{"route", "code"}),
		queryRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bitd_query_rows_total",
			Help: "Rows returned by HTTP queries (buffered, streamed and batches).",
		}),
		loginFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bitd_login_failures_total",
			Help: "Password logins refused for a wrong user name or password.",
		}),
		loginLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bitd_login_limited_total",
			Help: "Logins refused before the password was checked, by reason (failures: too many failed logins for the user or address, 429 rate_limited; busy: no hashing slot, 429 login_busy).",
		}, []string{"reason"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bitd_job_duration_seconds",
			Help:    "Time from a job's creation to its end (DONE or FAILED) for the jobs this bitd finished, by kind and state.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600},
		}, []string{"kind", "state"}),
		jobRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bitd_job_rows_total",
			Help: "Rows loaded by imports and written by exports that this bitd finished, by kind (rate() gives rows/s).",
		}, []string{"kind"}),
		jobBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bitd_job_bytes_total",
			Help: "File bytes read by imports and written by exports that this bitd finished, by kind.",
		}, []string{"kind"}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bitd_draining",
			Help: "1 while bitd drains (SIGTERM received: /readyz answers 503), else 0.",
		}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.httpBytes, m.httpErrors, m.queryRows, m.loginFails, m.loginLimited,
		m.jobDuration, m.jobRows, m.jobBytes, m.draining,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"failures", "busy"} {
		m.loginLimited.WithLabelValues(r) // present at 0 from the start
	}
	for _, k := range []string{"import", "export"} {
		m.jobRows.WithLabelValues(k)
		m.jobBytes.WithLabelValues(k)
	}
	return m
}

// Handler serves the registry in Prometheus's text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second})
}

// Registry is the registry itself (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// codes holds the strings of the status codes bitd answers, so that the
// request path does not format one per request.
var codes = func() map[int]string {
	c := map[int]string{}
	for i := 100; i < 600; i++ {
		c[i] = strconv.Itoa(i)
	}
	return c
}()

// HTTPRequest counts one answered request. route is the router's pattern
// ("POST /v2beta/query"), or a fixed word for requests no route took;
// methods outside HTTP's usual ones are counted as "other".
func (m *Metrics) HTTPRequest(route, method string, code int, d time.Duration, bytes int64) {
	if m == nil {
		return
	}
	cs, ok := codes[code]
	if !ok {
		cs = "other"
	}
	switch method { // a client may send any word: keep the label bounded
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	m.httpRequests.WithLabelValues(route, method, cs).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
	if bytes > 0 {
		m.httpBytes.WithLabelValues(route).Add(float64(bytes))
	}
}

// HTTPError counts one error answer of route (as for HTTPRequest) with
// code, the API's error code. A code that is not a snake_case word (a-z,
// 0-9 and _, at most 64 bytes; the API's fixed codes all are) is counted
// as "other".
func (m *Metrics) HTTPError(route, code string) {
	if m == nil {
		return
	}
	if !errorCode(code) {
		code = "other"
	}
	m.httpErrors.WithLabelValues(route, code).Inc()
}

// errorCode reports whether code has the shape of the API's error codes.
func errorCode(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Route is one route pattern's request metrics, resolved once so that the
// request path skips the label lookups (most of HTTPRequest's cost).
type Route struct {
	m            *Metrics
	name, method string
	dur          prometheus.Observer
	bytes        prometheus.Counter
	byCode       sync.Map // int → prometheus.Counter
}

// Route returns the metrics of pattern ("METHOD /path"); nil when m is nil.
func (m *Metrics) Route(pattern string) *Route {
	if m == nil {
		return nil
	}
	method, _, _ := strings.Cut(pattern, " ")
	return &Route{m: m, name: pattern, method: method,
		dur: m.httpDuration.WithLabelValues(pattern), bytes: m.httpBytes.WithLabelValues(pattern)}
}

// Observe counts one request answered with code in d, its body bytes long.
func (r *Route) Observe(code int, d time.Duration, bytes int64) {
	c, ok := r.byCode.Load(code)
	if !ok {
		cs, known := codes[code]
		if !known {
			cs = "other"
		}
		c, _ = r.byCode.LoadOrStore(code, r.m.httpRequests.WithLabelValues(r.name, r.method, cs))
	}
	c.(prometheus.Counter).Inc()
	r.dur.Observe(d.Seconds())
	if bytes > 0 {
		r.bytes.Add(float64(bytes))
	}
}

// QueryRows counts rows returned by HTTP queries.
func (m *Metrics) QueryRows(n int64) {
	if m != nil && n > 0 {
		m.queryRows.Add(float64(n))
	}
}

// LoginFailed counts a login refused for a wrong name or password.
func (m *Metrics) LoginFailed() {
	if m != nil {
		m.loginFails.Inc()
	}
}

// LoginLimited counts a login refused before its password was checked:
// "failures" (too many failed logins) or "busy" (no hashing slot).
func (m *Metrics) LoginLimited(reason string) {
	if m != nil {
		m.loginLimited.WithLabelValues(reason).Inc()
	}
}

// JobFinished records a job this bitd ended: kind "import" or "export",
// state "DONE" or "FAILED", d from its creation, the rows and file bytes it
// moved.
func (m *Metrics) JobFinished(kind, state string, d time.Duration, rows, bytes int64) {
	if m == nil {
		return
	}
	m.jobDuration.WithLabelValues(kind, state).Observe(d.Seconds())
	if rows > 0 {
		m.jobRows.WithLabelValues(kind).Add(float64(rows))
	}
	if bytes > 0 {
		m.jobBytes.WithLabelValues(kind).Add(float64(bytes))
	}
}

// SetDraining sets bitd_draining.
func (m *Metrics) SetDraining(on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.draining.Set(v)
}

// PoolStats are the HTTP query pools' connections to one cluster.
type PoolStats struct {
	Pools int // open pools (one per database and role)
	// InUse, Idle and Max are connections handed out, idle in a pool, and
	// the pools' bound; Waiting is callers waiting for a connection now.
	InUse, Idle, Max, Waiting int64
	// WaitsTotal counts the acquisitions that had to wait, WaitSeconds
	// their total wait (cumulative over the pools open now).
	WaitsTotal  int64
	WaitSeconds float64
}

// AddPools reports f's statistics at every scrape, labelled cluster.
func (m *Metrics) AddPools(cluster string, f func() PoolStats) {
	if m != nil {
		m.reg.MustRegister(&poolCollector{cluster: cluster, f: f})
	}
}

var (
	poolOpen    = prometheus.NewDesc("bitd_pool_open", "Open HTTP query pools (one per database and role).", []string{"cluster"}, nil)
	poolConns   = prometheus.NewDesc("bitd_pool_connections", "Connections of the HTTP query pools by state: in_use, idle, waiting (callers waiting for one), max (the pools' bound).", []string{"cluster", "state"}, nil)
	poolWaits   = prometheus.NewDesc("bitd_pool_acquire_waits_total", "Connection acquisitions that had to wait (over the pools open now).", []string{"cluster"}, nil)
	poolWaitSec = prometheus.NewDesc("bitd_pool_acquire_wait_seconds_total", "Time spent waiting for a connection (over the pools open now).", []string{"cluster"}, nil)
)

// AddPoolClusters reports f's statistics at every scrape, one cluster
// label per key (bitd with databases on several clusters). Use it instead
// of AddPools, not beside it.
func (m *Metrics) AddPoolClusters(f func() map[string]PoolStats) {
	if m != nil {
		m.reg.MustRegister(&poolClusters{f: f})
	}
}

type poolClusters struct{ f func() map[string]PoolStats }

func (c *poolClusters) Describe(ch chan<- *prometheus.Desc) { (&poolCollector{}).Describe(ch) }

func (c *poolClusters) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.f() {
		(&poolCollector{cluster: name, f: func() PoolStats { return s }}).Collect(ch)
	}
}

type poolCollector struct {
	cluster string
	f       func() PoolStats
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolOpen
	ch <- poolConns
	ch <- poolWaits
	ch <- poolWaitSec
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f()
	ch <- prometheus.MustNewConstMetric(poolOpen, prometheus.GaugeValue, float64(s.Pools), c.cluster)
	for _, v := range []struct {
		state string
		n     int64
	}{{"in_use", s.InUse}, {"idle", s.Idle}, {"waiting", s.Waiting}, {"max", s.Max}} {
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(v.n), c.cluster, v.state)
	}
	ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.WaitsTotal), c.cluster)
	ch <- prometheus.MustNewConstMetric(poolWaitSec, prometheus.CounterValue, s.WaitSeconds, c.cluster)
}

// WireStats are the wire proxy's sessions and relayed bytes.
type WireStats struct {
	Sessions                      int   // open now
	SessionsTotal                 int64 // opened since start
	BytesToBackend, BytesToClient int64
	// CancelsRelayed: cancel requests for sessions of other replicas handed
	// on; CancelsRelayedIn: handed-on ones that cancelled a session here.
	CancelsRelayed, CancelsRelayedIn int64
}

// AddWire reports f's statistics at every scrape.
func (m *Metrics) AddWire(f func() WireStats) {
	if m != nil {
		m.reg.MustRegister(&wireCollector{f: f})
	}
}

var (
	wireSessions      = prometheus.NewDesc("bitd_wire_sessions", "Open PostgreSQL wire-proxy sessions.", nil, nil)
	wireSessionsTotal = prometheus.NewDesc("bitd_wire_sessions_total", "PostgreSQL wire-proxy sessions opened (past authentication).", nil, nil)
	wireBytes         = prometheus.NewDesc("bitd_wire_bytes_total", "Bytes relayed by the wire proxy, by direction (to_backend, to_client).", []string{"direction"}, nil)
	wireCancels       = prometheus.NewDesc("bitd_wire_cancels_relayed_total", "Wire-proxy cancel requests relayed between replicas: out (for another replica's session) and in (that cancelled a session here).", []string{"direction"}, nil)
)

type wireCollector struct{ f func() WireStats }

func (c *wireCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- wireSessions
	ch <- wireSessionsTotal
	ch <- wireBytes
	ch <- wireCancels
}

func (c *wireCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f()
	ch <- prometheus.MustNewConstMetric(wireSessions, prometheus.GaugeValue, float64(s.Sessions))
	ch <- prometheus.MustNewConstMetric(wireSessionsTotal, prometheus.CounterValue, float64(s.SessionsTotal))
	ch <- prometheus.MustNewConstMetric(wireBytes, prometheus.CounterValue, float64(s.BytesToBackend), "to_backend")
	ch <- prometheus.MustNewConstMetric(wireBytes, prometheus.CounterValue, float64(s.BytesToClient), "to_client")
	ch <- prometheus.MustNewConstMetric(wireCancels, prometheus.CounterValue, float64(s.CancelsRelayed), "out")
	ch <- prometheus.MustNewConstMetric(wireCancels, prometheus.CounterValue, float64(s.CancelsRelayedIn), "in")
}

// CacheStats are the access cache's counters.
type CacheStats struct {
	Entries                     int
	Hits, Misses, Invalidations int64
}

// AddCache reports f's statistics at every scrape.
func (m *Metrics) AddCache(f func() CacheStats) {
	if m != nil {
		m.reg.MustRegister(&cacheCollector{f: f})
	}
}

var (
	cacheEntries = prometheus.NewDesc("bitd_access_cache_entries", "Entries in the access cache (principals and database resolutions).", nil, nil)
	cacheLookups = prometheus.NewDesc("bitd_access_cache_lookups_total", "Access cache lookups by result (hit, miss).", []string{"result"}, nil)
	cacheInval   = prometheus.NewDesc("bitd_access_cache_invalidations_total", "Access cache invalidations (change notifications and listener outages).", nil, nil)
)

type cacheCollector struct{ f func() CacheStats }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheEntries
	ch <- cacheLookups
	ch <- cacheInval
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f()
	ch <- prometheus.MustNewConstMetric(cacheEntries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(cacheLookups, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(cacheLookups, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(cacheInval, prometheus.CounterValue, float64(s.Invalidations))
}

// JobCount is the number of jobs of one kind in one state.
type JobCount struct {
	Kind, State string
	N           int64
}

// AddJobQueue reports the job queue (shared by every bitd on the metadata
// database) at every scrape; f runs with the scrape's bound of 5 s.
func (m *Metrics) AddJobQueue(f func(ctx context.Context) ([]JobCount, error)) {
	if m != nil {
		m.reg.MustRegister(&jobQueueCollector{f: f})
	}
}

var jobQueue = prometheus.NewDesc("bitd_jobs", "Import and export jobs in the shared queue by kind and state (RECEIVED: waiting, PROCESSING: running); the same for every bitd on one metadata database.", []string{"kind", "state"}, nil)

type jobQueueCollector struct {
	f func(ctx context.Context) ([]JobCount, error)
}

func (c *jobQueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobQueue }

func (c *jobQueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.f(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobQueue, err)
		return
	}
	for _, jc := range counts {
		ch <- prometheus.MustNewConstMetric(jobQueue, prometheus.GaugeValue, float64(jc.N), jc.Kind, jc.State)
	}
}
