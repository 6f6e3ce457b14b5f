// Package handler is the HTTP side of bitkit's Cloudflare Worker, kept free
// of syscall/js so that it builds and is tested natively; the Worker's main
// package only wires it to syumai/workers.
//
// Routes:
//
//	POST /query    {"database", "query", "params", "data_format"} → the bit.io query result
//	GET  /healthz  {"status":"ok"}, without touching bitd
//
// Every error is JSON {"error", "code", ...}: 400 bad JSON or request, and SQL
// errors (with "sqlstate"), 401/403/404 as bitd answered, 405/404 for other
// methods and paths, 413 a body above 1 MiB, 500 a missing or invalid Worker
// variable or secret (named, never its value), 502 bitd unreachable or
// failing, 504 the query outlived BITKIT_TIMEOUT_MS.
//
// POST /query is closed unless the operator opened it, since the Worker runs
// SQL with its own API key:
//
//   - with the secret BITKIT_WORKER_TOKEN set, it requires
//     "Authorization: Bearer <that token>" (401 otherwise), compared in
//     constant time;
//   - with BITKIT_WORKER_TOKEN unset, it answers 500 "worker_token_missing"
//     telling the operator to set the secret, unless the var
//     BITKIT_WORKER_PUBLIC is "true": then anyone who can reach the Worker
//     runs SQL (meant for a Worker behind Cloudflare Access, say).
//
// BITKIT_WORKER_PUBLIC may be unset, "true" or "false"; any other value is a
// 500 "invalid_configuration" naming it. A set token always wins over
// BITKIT_WORKER_PUBLIC = "true". GET /healthz is always open.
//
// A Worker runs a fresh Go instance for every request, so the handler keeps
// nothing between requests: the configuration is read and the core client
// built per request, and the credential is an API key (no login round trip).
package handler

import (
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/fnquery"
)

// DefaultTimeout bounds a query when BITKIT_TIMEOUT_MS is unset.
const DefaultTimeout = 10 * time.Second

// Config configures New.
type Config struct {
	// Getenv looks up a Worker variable or secret ("" when unset); it is
	// called per request. In the Worker it is cloudflare.Getenv. Required.
	Getenv func(string) string
	// Fetcher carries the requests to bitd; nil means core.DefaultFetcher
	// (in the Worker: jsfetch's transport on the Worker's fetch,
	// which aborts the fetch when the query's context ends).
	Fetcher core.Fetcher
}

// New returns the Worker's handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("POST /query", func(w http.ResponseWriter, r *http.Request) { query(w, r, cfg) })
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeError(w, &fnquery.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "use POST /query with a JSON body {\"database\", \"query\", \"params\", \"data_format\"}, not " + r.Method})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &fnquery.Error{Status: http.StatusNotFound, Code: "not_found",
			Message: "no route " + r.Method + " " + r.URL.Path + ": use POST /query or GET /healthz"})
	})
	return mux
}

// EnvWorkerToken is the secret callers must present as a bearer token.
const EnvWorkerToken = "BITKIT_WORKER_TOKEN"

// EnvWorkerPublic is the var that, set to "true", lets POST /query serve
// anonymous callers when EnvWorkerToken is unset.
const EnvWorkerPublic = "BITKIT_WORKER_PUBLIC"

// authorize decides whether r may run a query: nil, or the Error to answer.
// It names the settings involved, never their values.
func authorize(r *http.Request, getenv func(string) string) *fnquery.Error {
	var public bool
	switch getenv(EnvWorkerPublic) {
	case "", "false":
	case "true":
		public = true
	default:
		return &fnquery.Error{Status: http.StatusInternalServerError, Code: "invalid_configuration",
			Message: EnvWorkerPublic + ` is neither "true" nor "false": under [vars] in wrangler.toml, set it to "true" to let anonymous callers run SQL, or to "false" (or remove it) to require the ` + EnvWorkerToken + " secret"}
	}
	want := getenv(EnvWorkerToken)
	if want == "" {
		if public {
			return nil
		}
		return &fnquery.Error{Status: http.StatusInternalServerError, Code: "worker_token_missing",
			Message: "this Worker refuses queries because the " + EnvWorkerToken + " secret is not set: " +
				"run `wrangler secret put " + EnvWorkerToken + "` and have callers send `Authorization: Bearer <token>`, " +
				"or set " + EnvWorkerPublic + ` = "true" under [vars] in wrangler.toml to let anyone who can reach the Worker run SQL with its API key (e.g. behind Cloudflare Access)`}
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	// Hashing both sides first keeps the comparison's time independent of
	// the token's length too.
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 || !ok {
		return &fnquery.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "this Worker requires Authorization: Bearer <the " + EnvWorkerToken + " secret>"}
	}
	return nil
}

func query(w http.ResponseWriter, r *http.Request, cfg Config) {
	if e := authorize(r, cfg.Getenv); e != nil {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bitkit-worker"`)
		}
		writeError(w, e)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, fnquery.MaxRequestBytes+1))
	if err != nil {
		writeError(w, fnquery.BadRequest("reading the body: %v", err))
		return
	}
	req, e := fnquery.Decode(body)
	if e != nil {
		writeError(w, e)
		return
	}
	limit, e := fnquery.TimeoutFromEnv(cfg.Getenv, DefaultTimeout)
	if e != nil {
		writeError(w, e)
		return
	}
	c, e := fnquery.NewClient(fnquery.ClientConfig{
		Getenv: cfg.Getenv,
		How: func(name string) string {
			if name == fnquery.EnvEndpoint {
				return "add it to [vars] in wrangler.toml"
			}
			return "add it with `wrangler secret put " + name + "`"
		},
		Fetcher:   cfg.Fetcher,
		UserAgent: "bitkit-worker",
	})
	if e != nil {
		writeError(w, e)
		return
	}
	out, e := fnquery.Run(r.Context(), c, req, limit, "BITKIT_TIMEOUT_MS")
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeError(w http.ResponseWriter, e *fnquery.Error) { writeJSON(w, e.Status, e.JSON()) }

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
