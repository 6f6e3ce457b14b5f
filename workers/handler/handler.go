// Package handler is the HTTP side of bitkit's Cloudflare Worker, kept free
// of syscall/js so that it builds and is tested natively; the Worker's main
// package only wires it to syumai/workers.
//
// Routes:
//
//	POST /query    {"database", "query", "params", "data_format", "tx_id"} → the bit.io query result
//	POST /tx       {"database", "isolation_level", "read_only", "deferrable", "idle_timeout_ms"}
//	               → 201 {"tx_id", "expires_at", "database"}: an interactive transaction
//	POST /tx/{id}/commit, POST /tx/{id}/rollback → {"tx_id", "status"}
//	GET  /healthz  {"status":"ok"}, without touching bitd
//
// An interactive transaction lives on bitd, not in the Worker: request 1
// begins it and returns its tx_id, later requests (each a fresh instance)
// run statements in it with "tx_id" and end it. bitd accepts a tx_id only
// from the credential that began it, here the Worker's own, so callers of
// the Worker share its transactions as they share its credential; bitd
// rolls back one left idle longer than its idle timeout (default 15 s).
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
// built per request. The credential is the API key BITKIT_API_KEY (no login
// round trip), or BITKIT_USERNAME and BITKIT_PASSWORD with the access token
// kept in a KV namespace bound as BITKIT_TOKEN_KV (Config.TokenCache): the
// first request logs in, the next ones reuse the token until it is about to
// expire (then it is refreshed, or the Worker logs in again).
package handler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/fnquery"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
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
	// TokenCache returns where the token of a username/password login is
	// kept between requests (in the Worker: the KV namespace bound as
	// EnvTokenKV), or an error saying why there is none; called per request
	// that uses username/password. nil: the Worker takes API keys only.
	TokenCache func() (core.TokenCache, error)
}

// EnvTokenKV is the name of the KV namespace binding that keeps the access
// token of a username/password login between requests.
const EnvTokenKV = "BITKIT_TOKEN_KV"

// New returns the Worker's handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("POST /query", func(w http.ResponseWriter, r *http.Request) { query(w, r, cfg) })
	mux.HandleFunc("POST /tx", func(w http.ResponseWriter, r *http.Request) { begin(w, r, cfg) })
	mux.HandleFunc("POST /tx/{id}/commit", func(w http.ResponseWriter, r *http.Request) { end(w, r, cfg, true) })
	mux.HandleFunc("POST /tx/{id}/rollback", func(w http.ResponseWriter, r *http.Request) { end(w, r, cfg, false) })
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeError(w, &fnquery.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "use POST /query with a JSON body {\"database\", \"query\", \"params\", \"data_format\"}, not " + r.Method})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &fnquery.Error{Status: http.StatusNotFound, Code: "not_found",
			Message: "no route " + r.Method + " " + r.URL.Path + ": use POST /query, POST /tx, POST /tx/{tx_id}/commit or /rollback, or GET /healthz"})
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

// client authorizes r and builds the core client and the time limit of
// one request; on failure it has answered and returns nil.
func client(w http.ResponseWriter, r *http.Request, cfg Config) (*core.Client, time.Duration) {
	if e := authorize(r, cfg.Getenv); e != nil {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bitkit-worker"`)
		}
		writeError(w, e)
		return nil, 0
	}
	limit, e := fnquery.TimeoutFromEnv(cfg.Getenv, DefaultTimeout)
	if e != nil {
		writeError(w, e)
		return nil, 0
	}
	how := func(name string) string {
		if name == fnquery.EnvEndpoint {
			return "add it to [vars] in wrangler.toml"
		}
		return "add it with `wrangler secret put " + name + "`"
	}
	ccfg := fnquery.ClientConfig{Getenv: cfg.Getenv, How: how, Fetcher: cfg.Fetcher, UserAgent: "bitkit-worker"}
	if strings.TrimSpace(cfg.Getenv(fnquery.EnvAPIKey)) == "" && strings.TrimSpace(cfg.Getenv(fnquery.EnvUsername)) != "" {
		// username/password: the token must outlive this instance.
		if cfg.TokenCache == nil {
			writeError(w, &fnquery.Error{Status: http.StatusInternalServerError, Code: "invalid_configuration",
				Message: "this Worker takes an API key only: set BITKIT_API_KEY with `wrangler secret put BITKIT_API_KEY`"})
			return nil, 0
		}
		tc, err := cfg.TokenCache()
		if err != nil {
			writeError(w, fnquery.MissingConfig(EnvTokenKV, "BITKIT_USERNAME is set, and the Worker keeps the access token of its login in a KV namespace: "+
				"create one (`wrangler kv namespace create bitkit-tokens`) and bind it as "+EnvTokenKV+" under [[kv_namespaces]] in wrangler.toml, or set BITKIT_API_KEY instead ("+err.Error()+")"))
			return nil, 0
		}
		ccfg.AllowPassword, ccfg.TokenCache = true, tc
	}
	c, e := fnquery.NewClient(ccfg)
	if e != nil {
		writeError(w, e)
		return nil, 0
	}
	return c, limit
}

// readBody reads a request body of at most fnquery.MaxRequestBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, fnquery.MaxRequestBytes+1))
	if err != nil {
		writeError(w, fnquery.BadRequest("reading the body: %v", err))
		return nil, false
	}
	return body, true
}

func query(w http.ResponseWriter, r *http.Request, cfg Config) {
	c, limit := client(w, r, cfg)
	if c == nil {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, e := fnquery.Decode(body)
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

// beginRequest is the body of POST /tx.
type beginRequest struct {
	Database       string `json:"database"`
	IsolationLevel string `json:"isolation_level,omitempty"`
	ReadOnly       bool   `json:"read_only,omitempty"`
	Deferrable     bool   `json:"deferrable,omitempty"`
	IdleTimeoutMS  int64  `json:"idle_timeout_ms,omitempty"`
}

func decodeBegin(body []byte) (core.TxOptions, string, *fnquery.Error) {
	var req beginRequest
	dec := jsonx.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return core.TxOptions{}, "", fnquery.BadRequest(`the body is not a valid transaction request (%v): send {"database": "account/db"} and optionally "isolation_level", "read_only", "deferrable", "idle_timeout_ms"`, err)
	}
	if !strings.Contains(req.Database, "/") {
		return core.TxOptions{}, "", fnquery.BadRequest(`"database" %q is not of the form "account/db"`, req.Database)
	}
	opts := core.TxOptions{ReadOnly: req.ReadOnly, Deferrable: req.Deferrable}
	switch lvl := strings.ReplaceAll(req.IsolationLevel, "_", " "); lvl {
	case "", "read committed", "repeatable read", "serializable":
		opts.IsolationLevel = lvl
	default:
		return core.TxOptions{}, "", fnquery.BadRequest(`"isolation_level" %q is not "read committed", "repeatable read" or "serializable"`, req.IsolationLevel)
	}
	if req.IdleTimeoutMS < 0 {
		return core.TxOptions{}, "", fnquery.BadRequest(`"idle_timeout_ms" must be a positive number of milliseconds`)
	}
	opts.IdleTimeout = time.Duration(req.IdleTimeoutMS) * time.Millisecond
	return opts, req.Database, nil
}

// begin serves POST /tx.
func begin(w http.ResponseWriter, r *http.Request, cfg Config) {
	c, limit := client(w, r, cfg)
	if c == nil {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	opts, db, e := decodeBegin(body)
	if e != nil {
		writeError(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	tx, err := c.Begin(ctx, db, opts)
	if err != nil {
		writeError(w, fnquery.Classify(err, limit, "BITKIT_TIMEOUT_MS"))
		return
	}
	out := struct {
		TxID      string `json:"tx_id"`
		ExpiresAt string `json:"expires_at,omitempty"`
		Database  string `json:"database"`
	}{TxID: tx.ID(), Database: db}
	if !tx.ExpiresAt().IsZero() {
		out.ExpiresAt = tx.ExpiresAt().UTC().Format(time.RFC3339Nano)
	}
	b, _ := jsonx.Marshal(out) // strings only: cannot fail
	writeJSON(w, http.StatusCreated, b)
}

// end serves POST /tx/{id}/commit and /rollback.
func end(w http.ResponseWriter, r *http.Request, cfg Config, commit bool) {
	c, limit := client(w, r, cfg)
	if c == nil {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	tx := c.ResumeTx("", id)
	status, err := "committed", error(nil)
	if commit {
		err = tx.Commit(ctx)
	} else {
		status, err = "rolled_back", tx.Rollback(ctx)
	}
	if err != nil {
		writeError(w, fnquery.Classify(err, limit, "BITKIT_TIMEOUT_MS"))
		return
	}
	b, _ := jsonx.Marshal(map[string]string{"tx_id": id, "status": status})
	writeJSON(w, http.StatusOK, b)
}

func writeError(w http.ResponseWriter, e *fnquery.Error) { writeJSON(w, e.Status, e.JSON()) }

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
