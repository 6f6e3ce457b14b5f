// Package api is bitd's HTTP API: the router, middleware (request IDs,
// access log, panic recovery, body limits, authentication), the database and
// identity handlers, and the dbaccess.Resolver that the query and job
// handlers use.
//
// Every route under /v2beta is served with and without a trailing slash and
// never answered with a redirect. Every answer is JSON: errors use
// apierr's shape, unknown routes are 404 "not_found", a known route with the
// wrong method is 405 "method_not_allowed", and DELETEs answer {}.
//
// The package's handlers return their error (handlerFunc): they write
// only successful answers, and the adapter writes an error with
// apierr.Write.
//
// Authentication is "Authorization: Bearer <api key or access token>". The
// credential is looked up by its SHA-256 hash on every request, so a revoked
// key or token fails on the very next request. Anonymous callers may only
// log in and read /healthz.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/clientaddr"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"go.opentelemetry.io/otel/trace"
)

// MaxJSONBody is the largest JSON request body accepted (16 MiB).
const MaxJSONBody = 16 << 20

// Options configure a Server.
type Options struct {
	Store *store.Store
	// Access answers who a credential belongs to; nil means an uncached
	// access layer over Store.
	Access *access.Access
	Logger *slog.Logger
	// TokenTTL is the lifetime of access tokens from /auth/v1/login.
	TokenTTL time.Duration
	// RefreshIdle and RefreshLifetime are the idle and absolute lifetimes
	// of login sessions (refresh tokens); zero means 14 and 90 days.
	RefreshIdle     time.Duration
	RefreshLifetime time.Duration
	// OnDeleteDatabase runs before a database is dropped (close pools,
	// end relayed sessions). It may be nil.
	OnDeleteDatabase func(pgDatabase, databaseID string)
	// OnRevokeCredential runs after an API key or token is revoked, with its
	// id (end relayed sessions). It may be nil.
	OnRevokeCredential func(credentialID string)
	// OnAccessChanged runs after who may use a database changed (it was
	// made private, a collaborator was removed or their role changed), with
	// its id (re-check relayed sessions). It may be nil.
	OnAccessChanged func(databaseID string)
	// Login rate limits: at most LoginFailuresPerUser failed logins per user
	// name and LoginFailuresPerAddr per client address within
	// LoginWindow. Zero values mean 5, 20 and 1 minute.
	LoginFailuresPerUser int
	LoginFailuresPerAddr int
	LoginWindow          time.Duration
	// Metrics counts requests (by route pattern), login failures and
	// limiter hits; nil counts nothing.
	Metrics *metrics.Metrics
	// StorageLimit is the storage_limit_bytes of a new database when the
	// request gives none, and the most a request may ask for; 0 means
	// DefaultStorageLimit, -1 no limit (requests may then ask for any).
	StorageLimit int64
	// Ready, when set, answers /readyz beside the metadata database's
	// ping: a non-nil error (bitd is draining) makes it 503 with the
	// error's text as the reason.
	Ready func() error
	// Tracer, when set, starts a server span per request (trace.go),
	// continuing the client's W3C trace context; nil starts none.
	Tracer trace.Tracer
}

// Server is the HTTP API. Create it with New, add routes with Handle, then
// serve Handler().
type Server struct {
	o        Options
	st       *store.Store
	acc      *access.Access
	log      *slog.Logger
	mux      *http.ServeMux
	fallback http.Handler
	wrap     []func(http.Handler) http.Handler
	limiter  *loginLimiter
	// routeMetrics holds each registered pattern's metrics (Handle); it
	// is only read once serving starts.
	routeMetrics map[string]*metrics.Route
}

// New returns a Server with the database, identity and health routes.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Access == nil && o.Store != nil { // an uncached access layer
		o.Access = access.New(access.Config{Store: o.Store, Logger: o.Logger, MaxEntries: -1})
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.RefreshIdle <= 0 {
		o.RefreshIdle = 14 * 24 * time.Hour
	}
	if o.RefreshLifetime <= 0 {
		o.RefreshLifetime = 90 * 24 * time.Hour
	}
	if o.LoginFailuresPerUser <= 0 {
		o.LoginFailuresPerUser = 5
	}
	if o.LoginFailuresPerAddr <= 0 {
		o.LoginFailuresPerAddr = 20
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = time.Minute
	}
	s := &Server{o: o, st: o.Store, acc: o.Access, log: o.Logger, mux: http.NewServeMux(),
		limiter:      newLoginLimiter(o.Store, o.Logger, o.LoginFailuresPerUser, o.LoginFailuresPerAddr, o.LoginWindow),
		routeMetrics: map[string]*metrics.Route{}}
	s.routes()
	return s
}

// RouteOption changes how Handle wraps a handler.
type RouteOption int

const (
	// Public serves the route without requiring a credential (a bad
	// credential is still refused).
	Public RouteOption = iota + 1
	// NoBodyLimit leaves the request body unlimited (the handler limits it,
	// e.g. multipart uploads).
	NoBodyLimit
	// UserOnly refuses service-account callers with 403.
	UserOnly
)

// Handle registers h for pattern ("METHOD /path"), with and without a
// trailing slash. Unless Public is given, the caller must be authenticated
// (the principal is in the request context, see authn.From); bodies are
// limited to MaxJSONBody unless NoBodyLimit is given.
func (s *Server) Handle(pattern string, h http.Handler, opts ...RouteOption) {
	var public, nolimit, userOnly bool
	for _, o := range opts {
		switch o {
		case Public:
			public = true
		case NoBodyLimit:
			nolimit = true
		case UserOnly:
			userOnly = true
		}
	}
	inner := h
	if userOnly {
		next := inner
		inner = handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if p := authn.From(r.Context()); p != nil && p.Kind == authn.KindServiceAccount {
				return apierr.Forbidden("service accounts cannot use this endpoint: sign in as a user (API key or access token of a user)")
			}
			next.ServeHTTP(w, r)
			return nil
		})
	}
	final := s.authenticate(inner, !public)
	if !nolimit {
		next := final
		final = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, MaxJSONBody)
			next.ServeHTTP(w, r)
		})
	}
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		panic("api: pattern needs a method: " + pattern)
	}
	p = strings.TrimSuffix(p, "/")
	s.mux.Handle(method+" "+p, final)
	s.mux.Handle(method+" "+p+"/{$}", final)
	if s.o.Metrics != nil {
		// Resolved now: the request path then skips the label lookups.
		for _, pat := range []string{method + " " + p, method + " " + p + "/{$}"} {
			s.routeMetrics[pat] = s.o.Metrics.Route(pat)
		}
	}
}

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc, opts ...RouteOption) {
	s.Handle(pattern, h, opts...)
}

// handlerFunc is a handler that returns its error instead of writing it:
// apierr.HandlerFunc, bitd's one adapter, answers a non-nil error with
// apierr.Write and counts it (statusWriter.CountError). A handler that
// wrote its answer itself returns nil; one that has started writing must
// not return an error.
type handlerFunc = apierr.HandlerFunc

// handle is Handle for a handlerFunc: the package's own routes.
func (s *Server) handle(pattern string, h handlerFunc, opts ...RouteOption) {
	s.Handle(pattern, h, opts...)
}

// SetFallback serves paths outside the API (/v2beta, /auth, /iam, /healthz)
// with h, e.g. the web dashboard. Without it they are JSON 404s.
func (s *Server) SetFallback(h http.Handler) { s.fallback = h }

// Use adds a middleware around the router, inside request IDs, logging and
// recovery (e.g. CORS). Middlewares added first run first.
func (s *Server) Use(mw func(http.Handler) http.Handler) { s.wrap = append(s.wrap, mw) }

// Handler returns the complete handler: request ID, panic recovery, access
// log, the middlewares from Use, then the router.
func (s *Server) Handler() http.Handler {
	var h http.Handler = handlerFunc(s.dispatch)
	for i := len(s.wrap) - 1; i >= 0; i-- {
		h = s.wrap[i](h)
	}
	return s.requestID(s.accessLog(s.recover(h)))
}

func isAPIPath(p string) bool {
	for _, pre := range []string{"/v2beta", "/auth/", "/iam/", "/healthz", "/readyz"} {
		if p == pre || strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) error {
	if !isAPIPath(r.URL.Path) && s.fallback != nil {
		setRoute(w, routeFallback)
		s.fallback.ServeHTTP(w, r)
		return nil
	}
	clean := path.Clean(r.URL.Path)
	if strings.HasSuffix(r.URL.Path, "/") && clean != "/" {
		clean += "/"
	}
	if clean != r.URL.Path {
		return apierr.NotFound("no route for %s %s: the path is not in canonical form", r.Method, r.URL.Path)
	}
	if _, pattern := s.mux.Handler(r); pattern != "" {
		setRoute(w, pattern)
		s.mux.ServeHTTP(w, r)
		return nil
	}
	var allow []string
	for _, m := range methods {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return apierr.New(http.StatusMethodNotAllowed, "method_not_allowed",
			"%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))
	}
	return apierr.NotFound("no route for %s %s: see the API reference in docs/bitd.md", r.Method, r.URL.Path)
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRE.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(apierr.WithRequestID(r.Context(), id)))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	route  string // the pattern that served the request (metrics)
	m      *metrics.Metrics
	code   string // the error code answered (CountError), for the span
}

// CountError counts an error answer of the request in
// bitd_http_errors_total, by its route (see setRoute) and code
// (apierr.HandlerFunc calls it).
func (w *statusWriter) CountError(code string) {
	route := w.route
	if route == "" {
		route = routeUnmatched
	}
	w.code = code
	w.m.HTTPError(route, code)
}

// Route labels of requests no API route served.
const (
	routeFallback  = "fallback"  // the web dashboard (SetFallback)
	routeUnmatched = "unmatched" // 404, 405, non-canonical paths
)

// setRoute records the route pattern serving a request on its statusWriter,
// which middlewares between accessLog and dispatch (compression) may wrap:
// their writers implement Unwrap.
func setRoute(w http.ResponseWriter, pattern string) {
	for range 8 {
		switch x := w.(type) {
		case *statusWriter:
			x.route = pattern
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush forwards to the underlying writer (streamed query results).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, m: s.o.Metrics}
		var span trace.Span // nil unless tracing is on (trace.go)
		if s.o.Tracer != nil {
			r, span = s.startSpan(r)
		}
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			if span != nil {
				// Ended after the access log line, which gets its trace_id
				// from the recording span (tracing.LogHandler).
				defer endSpan(span, sw, status)
			}
			d := time.Since(start)
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.String("client", clientaddr.Host(r.RemoteAddr)),
				slog.Int64("bytes", sw.bytes), slog.Duration("duration", d),
				slog.String("request_id", apierr.RequestID(r.Context())))
			if s.o.Metrics != nil {
				if rm := s.routeMetrics[sw.route]; rm != nil {
					rm.Observe(status, d, sw.bytes)
				} else {
					route := sw.route
					if route == "" {
						route = routeUnmatched
					}
					s.o.Metrics.HTTPRequest(route, r.Method, status, d, sw.bytes)
				}
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic serving request", "request_id", apierr.RequestID(r.Context()),
				"path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				return // headers already sent; the connection ends the answer
			}
			apierr.Write(w, r, apierr.New(http.StatusInternalServerError, "internal", "internal server error; the request ID identifies it in the server log"))
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) routes() {
	s.handle("GET /healthz", s.healthz, Public)
	s.handle("GET /readyz", s.readyz, Public)
	s.handle("GET /v2beta/db/", s.listDatabases)
	s.handle("POST /v2beta/db/", s.createDatabase, UserOnly)
	s.handle("GET /v2beta/db/{account}/{db}", s.getDatabase)
	s.handle("PATCH /v2beta/db/{account}/{db}", s.updateDatabase)
	s.handle("DELETE /v2beta/db/{account}/{db}", s.deleteDatabase)
	s.collaboratorRoutes()

	s.handle("POST /auth/v1/login", s.login, Public)
	s.handle("DELETE /auth/v1/token", s.logout)
	s.handle("POST /auth/v1/refresh", s.refresh, Public)
	s.handle("POST /auth/v1/revoke", s.revokeRefresh, Public)
	s.handle("GET /iam/v2/account", s.account)
	s.handle("GET /iam/v2/accounts:getIdByName", s.accountIDByName)

	s.handle("POST /v2beta/api-key/", s.createAPIKey, UserOnly)
	s.handle("DELETE /v2beta/api-key/", s.revokeAPIKeys, UserOnly)
	s.apiKeyRoutes()
	s.handle("GET /v2beta/service-account/", s.listServiceAccounts, UserOnly)
	s.handle("POST /v2beta/service-account/", s.createServiceAccount, UserOnly)
	s.handle("GET /v2beta/service-account/{id}", s.getServiceAccount, UserOnly)
	s.handle("POST /v2beta/service-account/{id}/api-key/", s.createServiceAccountKey, UserOnly)
	s.handle("DELETE /v2beta/service-account/{id}/api-key/", s.revokeServiceAccountKeys, UserOnly)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		s.log.WarnContext(r.Context(), "health check failed", "err", err)
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the metadata database is not reachable")
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers whether this bitd should get new requests: 503 with a
// JSON reason while it drains (Options.Ready) or while the metadata
// database does not answer, else 200. A load balancer's health check uses
// it; /healthz stays the liveness check.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.o.Ready != nil {
		if err := s.o.Ready(); err != nil {
			// Not returned (apierr.Write): a load balancer polls this
			// while bitd drains, which is no error worth a log line.
			apierr.WriteJSON(w, http.StatusServiceUnavailable, &apierr.Error{Code: "draining", Message: err.Error(),
				RequestID: apierr.RequestID(r.Context())})
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		return apierr.New(http.StatusServiceUnavailable, "metadata_unreachable",
			"the metadata database is not reachable: this bitd cannot authenticate or route requests until it is")
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
