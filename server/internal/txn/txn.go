// Package txn serves bitd's interactive transactions over HTTP:
//
//	POST /v2beta/tx                {database_name, isolation_level, read_only, deferrable, idle_timeout_ms}
//	                               → 201 {tx_id, expires_at, idle_timeout_ms}
//	POST /v2beta/query, /query/batch with "tx_id": the statements run in it
//	POST /v2beta/tx/{id}/commit    → 200 {tx_id, status: "committed"}
//	POST /v2beta/tx/{id}/rollback  → 200 {tx_id, status: "rolled_back"}
//
// A transaction holds one connection of the caller's pool (logged in as the
// caller's role, so PostgreSQL enforces access as for every query) on the
// replica that began it, from BEGIN until it ends; then the connection's
// session is reset (DISCARD ALL) and it goes back to its pool. The
// connection counts against the connection budget like any other.
//
// A tx_id names the replica that holds it (id.go): a request for it that
// reaches another replica is handed to that one (forward.go), signed with
// a key derived from the shared server secret, so no load-balancer
// stickiness is needed.
//
// Only the credential that began a transaction may use it; others get the
// same 404 as for a transaction that does not exist. A transaction runs one
// request at a time (a second concurrent one gets 409 transaction_busy).
// It is rolled back when it has been idle (no request in progress) for its
// idle timeout (default 15 s, at most Config.MaxIdleTimeout), when it
// reaches Config.MaxLifetime, when its credential is revoked, when its
// caller loses access to the database or the database is deleted, and
// when bitd stops. A statement error leaves it failed, as PostgreSQL does:
// later statements fail until it is rolled back (a commit rolls it back
// and answers 409 transaction_aborted). Open transactions are capped per
// principal and per database: past a cap, a begin answers 429 with
// Retry-After.
package txn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/query"
	"github.com/bitkit-dev/bitkit/server/internal/reqjson"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Config's zero values.
const (
	DefaultIdleTimeout     = 15 * time.Second
	DefaultMaxIdleTimeout  = 5 * time.Minute
	DefaultMaxLifetime     = 15 * time.Minute
	DefaultMaxPerPrincipal = 8
	DefaultMaxPerDatabase  = 8
	// beginWait bounds the wait for a connection at BEGIN.
	beginWait = 10 * time.Second
	// endTimeout bounds the ROLLBACK or COMMIT that ends a transaction
	// bitd ends itself.
	endTimeout = 5 * time.Second
	// tombstoneAge is how long an ended transaction's reason is kept to
	// explain a later request for it.
	tombstoneAge = 10 * time.Minute
)

// Resolver is what the manager needs of the access layer.
type Resolver interface {
	dbaccess.Resolver
	Principal(ctx context.Context, cred string) (*authn.Principal, error)
}

var _ Resolver = (*access.Access)(nil)

// Config configures a Manager.
type Config struct {
	// Secret is the server secret shared by the replicas.
	Secret []byte
	// Advertise is the base URL ("http://host:port" or "https://name:port")
	// at which the other replicas reach this one's HTTP API (bitd
	// --advertise-http; default its HTTP listener's address). Under HTTPS
	// the name must be one the certificate covers.
	Advertise string
	Resolver  Resolver
	// IdleTimeout is a transaction's idle timeout when begin gives none;
	// MaxIdleTimeout caps idle_timeout_ms; MaxLifetime bounds a
	// transaction from its BEGIN. Zero values mean the defaults.
	IdleTimeout    time.Duration
	MaxIdleTimeout time.Duration
	MaxLifetime    time.Duration
	// MaxPerPrincipal and MaxPerDatabase cap open transactions (0 means
	// the defaults, 8 and 8). Keep MaxPerDatabase below the pools' size
	// (--pool-max-conns), so statements outside transactions keep
	// connections.
	MaxPerPrincipal int
	MaxPerDatabase  int
	Logger          *slog.Logger
	// HTTPClient carries requests to the other replicas; nil means a
	// client of its own.
	HTTPClient *http.Client
}

// Manager holds this replica's open transactions. It is safe for
// concurrent use.
type Manager struct {
	cfg     Config
	key     []byte
	client  *http.Client
	mu      sync.Mutex
	txs     map[string]*tx
	perPrin map[string]int
	perDB   map[string]int
	ended   map[string]tombstone
	closed  bool
	recheck chan struct{}
	done    chan struct{}
}

type tombstone struct {
	reason string
	at     time.Time
}

// tx is one open transaction.
type tx struct {
	id       string
	m        *Manager
	conn     *pgxpool.Conn
	target   *dbaccess.Target
	cred     string // the credential that began it, for re-checks; never logged
	credID   string
	prinKey  string
	idle     time.Duration
	expires  time.Time
	idleT    *time.Timer
	lifeT    *time.Timer
	mu       sync.Mutex
	busy     bool
	ended    bool
	doom     string // why to end it once the request in progress is done
	cancelOp context.CancelCauseFunc
}

// New returns a Manager. Call Close when bitd stops.
func New(cfg Config) *Manager {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxIdleTimeout <= 0 {
		cfg.MaxIdleTimeout = DefaultMaxIdleTimeout
	}
	cfg.IdleTimeout = min(cfg.IdleTimeout, cfg.MaxIdleTimeout)
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.MaxPerPrincipal <= 0 {
		cfg.MaxPerPrincipal = DefaultMaxPerPrincipal
	}
	if cfg.MaxPerDatabase <= 0 {
		cfg.MaxPerDatabase = DefaultMaxPerDatabase
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{cfg: cfg, key: deriveKey(cfg.Secret), client: cfg.HTTPClient, txs: map[string]*tx{},
		perPrin: map[string]int{}, perDB: map[string]int{}, ended: map[string]tombstone{},
		recheck: make(chan struct{}, 1), done: make(chan struct{})}
	if m.client == nil {
		m.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
	}
	go m.recheckLoop()
	return m
}

var _ query.TxSource = (*Manager)(nil)

// Routes are the transaction endpoints, for api.Server.Handle. The
// handlers return their errors to apierr.HandlerFunc, which writes them.
func (m *Manager) Routes() map[string]apierr.HandlerFunc {
	return map[string]apierr.HandlerFunc{
		"POST /v2beta/tx":               m.ServeBegin,
		"POST /v2beta/tx/{id}/commit":   m.serveEnd(true),
		"POST /v2beta/tx/{id}/rollback": m.serveEnd(false),
	}
}

// Open is the number of open transactions on this replica.
func (m *Manager) Open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.txs)
}

type beginRequest struct {
	DatabaseName  string       `json:"database_name"`
	Isolation     string       `json:"isolation_level"`
	ReadOnly      reqjson.Bool `json:"read_only"`  // a boolean or "true"/"false"
	Deferrable    reqjson.Bool `json:"deferrable"` // a boolean or "true"/"false"
	IdleTimeoutMS *int64       `json:"idle_timeout_ms"`
}

type beginAnswer struct {
	TxID          string    `json:"tx_id"`
	ExpiresAt     time.Time `json:"expires_at"`
	IdleTimeoutMS int64     `json:"idle_timeout_ms"`
}

var isolationLevels = map[string]string{
	"":                 "READ COMMITTED",
	"read committed":   "READ COMMITTED",
	"repeatable read":  "REPEATABLE READ",
	"serializable":     "SERIALIZABLE",
	"read uncommitted": "READ UNCOMMITTED",
}

// bearer is the credential of r.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func principalKey(p *authn.Principal) string {
	switch {
	case p.UserID != "":
		return "u:" + p.UserID
	case p.ServiceAccountID != "":
		return "s:" + p.ServiceAccountID
	}
	return "c:" + p.CredentialID
}

// ServeBegin serves POST /v2beta/tx. The connection and the reservation
// against the caps are given back (deferred) before an error it returns
// is written.
func (m *Manager) ServeBegin(w http.ResponseWriter, r *http.Request) error {
	var req beginRequest
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = jsonx.Unmarshal(body, &req)
	}
	if err != nil {
		if field, value, ok := reqjson.BadBool(body, &beginRequest{}); ok {
			return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_field", Field: field,
				Message: fmt.Sprintf(`field %q must be true or false (a JSON boolean, or the string "true" or "false"), not %s`, field, value)}
		}
		return apierr.BadRequest("invalid_json", "the request body is not a valid JSON object: %v", err)
	}
	level, ok := isolationLevels[strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(req.Isolation, "_", " ")), " "))]
	if !ok {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "isolation_level",
			Message: fmt.Sprintf("isolation_level %q is not supported: use \"read committed\" (the default), \"repeatable read\" or \"serializable\"", req.Isolation)}
	}
	idle := m.cfg.IdleTimeout
	if req.IdleTimeoutMS != nil && *req.IdleTimeoutMS != 0 {
		if *req.IdleTimeoutMS < 0 {
			return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "idle_timeout_ms",
				Message: fmt.Sprintf("idle_timeout_ms must be positive (milliseconds, at most %d)", m.cfg.MaxIdleTimeout.Milliseconds())}
		}
		idle = min(time.Duration(min(*req.IdleTimeoutMS, m.cfg.MaxIdleTimeout.Milliseconds()))*time.Millisecond, m.cfg.MaxIdleTimeout)
	}
	t, err := m.cfg.Resolver.Resolve(r.Context(), req.DatabaseName)
	if err != nil {
		return err
	}
	p := t.Principal
	pk := principalKey(p)
	if err := m.reserve(pk, t.DatabaseID); err != nil {
		return err
	}
	reserved := true
	defer func() {
		if reserved {
			m.unreserve(pk, t.DatabaseID)
		}
	}()
	ctx, cancel := context.WithTimeout(r.Context(), beginWait)
	defer cancel()
	conn, err := t.Pool.Acquire(ctx)
	if err != nil {
		return m.acquireError(r.Context(), err)
	}
	owned := false // by the transaction, which releases it when it ends
	defer func() {
		if !owned {
			conn.Release() // after a failed BEGIN: not idle, so the pool destroys it
		}
	}()
	begin := "BEGIN ISOLATION LEVEL " + level
	if req.ReadOnly {
		begin += " READ ONLY"
	}
	if req.Deferrable {
		begin += " DEFERRABLE"
	}
	if req.ReadOnly {
		// The SELECT takes the transaction's first snapshot, after which
		// SET TRANSACTION READ WRITE is refused.
		begin += "; SELECT 1"
	}
	pc := conn.Conn().PgConn()
	if _, err := pc.Exec(ctx, begin).ReadAll(); err != nil {
		return m.acquireError(r.Context(), err)
	}
	owned = true
	now := time.Now()
	x := &tx{id: newID(m.key, m.cfg.Advertise), m: m, conn: conn, target: t, cred: bearer(r), credID: p.CredentialID,
		prinKey: pk, idle: idle, expires: now.Add(m.cfg.MaxLifetime)}
	x.idleT = time.AfterFunc(idle, func() { x.expire("it was idle for its idle timeout of "+idle.String(), true) })
	x.lifeT = time.AfterFunc(m.cfg.MaxLifetime, func() {
		x.expire("it reached the server's maximum transaction lifetime of "+m.cfg.MaxLifetime.String(), false)
	})
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		go x.finish("ROLLBACK")
		return apierr.New(http.StatusServiceUnavailable, "shutting_down", "bitd is shutting down; begin the transaction again")
	}
	m.txs[x.id] = x
	m.mu.Unlock()
	reserved = false
	apierr.WriteJSON(w, http.StatusCreated, &beginAnswer{TxID: x.id, ExpiresAt: x.expires.UTC(), IdleTimeoutMS: idle.Milliseconds()})
	return nil
}

func (m *Manager) acquireError(reqCtx context.Context, err error) error {
	if reqCtx.Err() != nil {
		return apierr.New(499, "client_closed_request", "the client closed the request")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		e := apierr.New(http.StatusServiceUnavailable, "database_busy",
			"no connection to the database became free within %s to begin the transaction; retry shortly", beginWait)
		e.RetryAfter = time.Second
		return e
	}
	e := apierr.As(err)
	if e.Status == http.StatusInternalServerError {
		m.cfg.Logger.Error("txn: cannot begin a transaction", "err", err)
		e = apierr.New(http.StatusServiceUnavailable, "database_unavailable", "cannot connect to the database right now; retry in a moment")
		e.RetryAfter = time.Second
	}
	return e
}

// reserve counts a transaction against the caps, or answers 429.
func (m *Manager) reserve(pk, dbID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.perPrin[pk] >= m.cfg.MaxPerPrincipal {
		e := apierr.New(http.StatusTooManyRequests, "too_many_transactions",
			"you already have %d open transactions on this server (the limit): commit or roll back one first", m.cfg.MaxPerPrincipal)
		e.RetryAfter = time.Second
		return e
	}
	if m.perDB[dbID] >= m.cfg.MaxPerDatabase {
		e := apierr.New(http.StatusTooManyRequests, "too_many_transactions",
			"the database already has %d open transactions on this server (the limit); retry shortly", m.cfg.MaxPerDatabase)
		e.RetryAfter = time.Second
		return e
	}
	m.perPrin[pk]++
	m.perDB[dbID]++
	return nil
}

func (m *Manager) unreserve(pk, dbID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dec(pk, dbID)
}

func (m *Manager) dec(pk, dbID string) {
	if m.perPrin[pk]--; m.perPrin[pk] <= 0 {
		delete(m.perPrin, pk)
	}
	if m.perDB[dbID]--; m.perDB[dbID] <= 0 {
		delete(m.perDB, dbID)
	}
}

func notFound(id, why string) error {
	msg := "transaction " + id + " not found"
	if why != "" {
		msg += ": it was rolled back because " + why
	} else {
		msg += " (it ended, timed out, was begun with another credential, or never existed); begin a new one with POST /v2beta/tx"
	}
	return &apierr.Error{Status: http.StatusNotFound, Code: "transaction_not_found", Field: "tx_id", Message: msg}
}

// claim finds the caller's transaction id and marks it busy for one request.
// Requests for another replica's transaction are forwarded (handled).
func (m *Manager) claim(w http.ResponseWriter, r *http.Request, id string, body []byte) (x *tx, handled bool, err error) {
	owner, ok := parseID(m.key, id)
	if !ok {
		return nil, false, notFound(id, "")
	}
	if hop := r.Header.Get(HopHeader); hop != "" && !checkHop(m.key, id, hop, time.Now()) {
		return nil, false, apierr.Forbidden("the %s header is not a valid signature of another replica of this server", HopHeader)
	}
	if owner != m.cfg.Advertise {
		if r.Header.Get(HopHeader) != "" {
			return nil, false, notFound(id, "")
		}
		if err := m.forward(w, r, id, owner, body); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	p := authn.From(r.Context())
	m.mu.Lock()
	x = m.txs[id]
	ts, wasEnded := m.ended[id]
	m.mu.Unlock()
	if x == nil || p == nil || p.CredentialID != x.credID {
		if x == nil && wasEnded && p != nil && ts.reason != "" {
			return nil, false, notFound(id, ts.reason)
		}
		return nil, false, notFound(id, "")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ended {
		return nil, false, notFound(id, "")
	}
	if x.busy {
		return nil, false, apierr.New(http.StatusConflict, "transaction_busy",
			"another request is using transaction %s; a transaction runs one request at a time: wait for it", id)
	}
	x.busy = true
	x.idleT.Stop()
	return x, false, nil
}

// Use implements query.TxSource.
func (m *Manager) Use(w http.ResponseWriter, r *http.Request, id string, body []byte) (*query.TxLease, bool, error) {
	x, handled, err := m.claim(w, r, id, body)
	if x == nil {
		return nil, handled, err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	x.mu.Lock()
	x.cancelOp = cancel
	x.mu.Unlock()
	var once sync.Once
	return &query.TxLease{Conn: x.conn, Target: x.target, Ctx: ctx, Done: func() {
		once.Do(func() { x.release(cancel) })
	}}, false, nil
}

// release ends a request's use of x.
func (x *tx) release(cancel context.CancelCauseFunc) {
	cancel(nil)
	pc := x.conn.Conn().PgConn()
	x.mu.Lock()
	x.busy = false
	x.cancelOp = nil
	doom := x.doom
	switch {
	case pc.IsClosed():
		doom = "its database connection was lost"
	case pc.TxStatus() == 'I':
		doom = "a statement ended it (COMMIT, ROLLBACK or similar): end transactions with /v2beta/tx/{id}/commit or /rollback"
	}
	if doom == "" {
		x.idleT.Reset(x.idle)
	}
	x.mu.Unlock()
	if doom != "" {
		x.m.end(x, doom)
	}
}

// expire ends x for reason, at once when idle, else once the request in
// progress is done (which it cancels, unless onlyIdle).
func (x *tx) expire(reason string, onlyIdle bool) {
	x.mu.Lock()
	if x.ended {
		x.mu.Unlock()
		return
	}
	if x.busy {
		if !onlyIdle {
			x.doom = reason
			if x.cancelOp != nil {
				// The request in progress answers why (query.TxLease.Ctx).
				x.cancelOp(&apierr.Error{Status: http.StatusConflict, Code: "transaction_ended", Field: "tx_id",
					Message: "the server rolled back transaction " + x.id + " while this statement ran, because " + reason + "; begin a new one with POST /v2beta/tx"})
			}
		}
		x.mu.Unlock()
		return
	}
	x.mu.Unlock()
	x.m.end(x, reason)
}

// end removes x and rolls it back, unless a request holds it (then the
// request's release does).
func (m *Manager) end(x *tx, reason string) {
	x.mu.Lock()
	if x.ended || x.busy {
		x.mu.Unlock()
		return
	}
	x.ended = true
	x.mu.Unlock()
	if !m.forget(x, reason) {
		return
	}
	m.cfg.Logger.Info("txn: transaction rolled back", "database", x.target.FullName, "reason", reason)
	x.finish("ROLLBACK")
}

// forget removes x from the maps; false when it was not there.
func (m *Manager) forget(x *tx, reason string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.txs[x.id] != x {
		return false
	}
	delete(m.txs, x.id)
	m.dec(x.prinKey, x.target.DatabaseID)
	now := time.Now()
	if len(m.ended) > 10_000 {
		for k, t := range m.ended {
			if now.Sub(t.at) > tombstoneAge || len(m.ended) > 10_000 {
				delete(m.ended, k)
			}
		}
	}
	m.ended[x.id] = tombstone{reason: reason, at: now}
	return true
}

// finish sends sql (COMMIT or ROLLBACK) with the session reset behind it
// and gives the connection back to its pool; it returns the command tag.
func (x *tx) finish(sql string) (string, error) {
	x.idleT.Stop()
	x.lifeT.Stop()
	defer x.conn.Release()
	pc := x.conn.Conn().PgConn()
	if pc.IsClosed() {
		return "", errors.New("the transaction's database connection was lost")
	}
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	pgpool.QueueReset(pc)
	res, err := pc.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if len(res) != 1 {
		return "", fmt.Errorf("%s answered %d results", sql, len(res))
	}
	return res[0].CommandTag.String(), nil
}

type endAnswer struct {
	TxID   string `json:"tx_id"`
	Status string `json:"status"`
}

// serveEnd serves POST /v2beta/tx/{id}/commit (commit) and /rollback.
func (m *Manager) serveEnd(commit bool) apierr.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		x, handled, err := m.claim(w, r, id, nil)
		if handled {
			return nil
		}
		if err != nil {
			return err
		}
		x.mu.Lock()
		x.ended, x.busy = true, false
		x.mu.Unlock()
		sql, status, reason := "ROLLBACK", "rolled_back", "the client rolled it back"
		if commit {
			sql, status, reason = "COMMIT", "committed", "the client committed it"
		}
		m.forget(x, reason)
		tag, err := x.finish(sql)
		if err != nil {
			e := apierr.As(err)
			if e.Status == http.StatusInternalServerError {
				e = apierr.New(http.StatusServiceUnavailable, "database_unavailable",
					"the transaction's database connection failed while ending it; it was not committed")
			}
			return e
		}
		if commit && tag != "COMMIT" {
			return apierr.New(http.StatusConflict, "transaction_aborted",
				"the transaction had failed (a statement error) and was rolled back; nothing was committed")
		}
		apierr.WriteJSON(w, http.StatusOK, &endAnswer{TxID: id, Status: status})
		return nil
	}
}

// OnNotify ends the transactions of a revoked credential at once and
// re-checks every other after any other access change (a deleted
// database, a removed member). Register it with access.Access.OnNotify.
func (m *Manager) OnNotify(tags []string) {
	all := false
	for _, t := range tags {
		if id, ok := strings.CutPrefix(t, store.CredTag("")); ok {
			go m.EndCredential(id) // the listener must not wait for the rollbacks
			continue
		}
		all = true
	}
	if all {
		select {
		case m.recheck <- struct{}{}:
		default:
		}
	}
}

// EndCredential rolls back the transactions begun with credential id.
func (m *Manager) EndCredential(id string) {
	for _, x := range m.snapshot() {
		if x.credID == id {
			x.expire("its credential was revoked", false)
		}
	}
}

// EndDatabase rolls back the transactions on database id (being deleted).
func (m *Manager) EndDatabase(id string) {
	for _, x := range m.snapshot() {
		if x.target.DatabaseID == id {
			x.expire("its database was deleted", false)
		}
	}
}

func (m *Manager) snapshot() []*tx {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*tx, 0, len(m.txs))
	for _, x := range m.txs {
		out = append(out, x)
	}
	return out
}

func (m *Manager) recheckLoop() {
	for {
		select {
		case <-m.done:
			return
		case <-m.recheck:
		}
		for _, x := range m.snapshot() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if why := m.stillAllowed(ctx, x); why != "" {
				x.expire(why, false)
			}
			cancel()
		}
	}
}

// stillAllowed re-checks x's credential and database access; it returns
// why x must end, or "".
func (m *Manager) stillAllowed(ctx context.Context, x *tx) string {
	p, err := m.cfg.Resolver.Principal(ctx, x.cred)
	if err != nil {
		if e := apierr.As(err); e.Status == http.StatusUnauthorized {
			return "its credential was revoked or expired"
		}
		return "" // the metadata database is unreachable: keep it
	}
	t, err := m.cfg.Resolver.Resolve(authn.With(ctx, p), x.target.FullName)
	if err != nil {
		if e := apierr.As(err); e.Status == http.StatusNotFound || e.Status == http.StatusUnauthorized {
			return "its database was deleted or its caller lost access to it"
		}
		return ""
	}
	if t.DatabaseID != x.target.DatabaseID || t.PGRole != x.target.PGRole {
		return "its caller's access to the database changed"
	}
	return ""
}

// Close rolls back every open transaction (bitd is stopping).
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.done)
	m.mu.Unlock()
	for _, x := range m.snapshot() {
		x.expire("the server stopped", false)
	}
}
