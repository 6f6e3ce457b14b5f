package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// fixture is a platform database provisioned by the store's own code
// path (pgtest), with a table the owner created, shared by the tests of
// this package. Keys of kind "w" log in as its owner (a writer), keys of
// kind "r" as its reader.
type fixture struct {
	adminURL    string
	backendAddr string // where its roles log in (pgtest.DB.TenantAddr)
	pgDB        string
	owner       string
	reader      string
	ownerPW     string
	readerPW    string
	dbID        string
	db          *pgtest.DB
}

var fix pgtest.Shared[*fixture]

func TestMain(m *testing.M) { pgtest.Main(m) }

// sharedDB creates the fixture once. A missing TEST_DATABASE_URL fails.
func sharedDB(t *testing.T) *fixture {
	t.Helper()
	return fix.Get(t, newFixture)
}

// newFixture creates the fixture; the Cluster drops its database.
func newFixture(c *pgtest.Cluster, d *pgtest.DB, _ func(func())) (*fixture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := &fixture{
		adminURL:    c.AdminURL,
		backendAddr: d.TenantAddr.String(),
		pgDB:        d.Name,
		owner:       d.Owner,
		reader:      d.Reader,
		ownerPW:     d.Password(d.Owner),
		readerPW:    d.Password(d.Reader),
		dbID:        d.ID,
		db:          d,
	}
	// The reader may read it through the owner's default privileges.
	if err := d.Exec(ctx, d.Owner,
		"CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)",
		"INSERT INTO notes (body) VALUES ('hello'), ('world')",
	); err != nil {
		return nil, err
	}
	return f, nil
}

// testAuth maps generated keys to the fixture's roles.
type testAuth struct {
	f       *fixture
	mu      sync.Mutex
	keys    map[string]*WireTarget // key → target
	revoked map[string]bool        // credential id → revoked
	// withdrawn: credential id → its grant no longer holds.
	withdrawn map[string]bool
	checks    [][]Grant // every StillAuthorized call
	backend   string    // BackendAddr of new keys when set
}

const testDB = "acct/notes"

func newTestAuth(f *fixture) *testAuth {
	return &testAuth{f: f, keys: map[string]*WireTarget{}, revoked: map[string]bool{}, withdrawn: map[string]bool{}}
}

// key registers a fresh key for role ("w" or "r") and returns it and its
// credential id.
func (a *testAuth) key(role string) (key, credID string) {
	key = "v2_" + pgtest.RandHex(20)
	credID = "cred-" + pgtest.RandHex(4)
	t := &WireTarget{DatabaseID: a.f.dbID, CredentialID: credID, PGDatabase: a.f.pgDB, BackendAddr: a.f.backendAddr}
	if a.backend != "" {
		t.BackendAddr = a.backend
	}
	if role == "w" {
		t.PGRole, t.PGPassword = a.f.owner, a.f.ownerPW
	} else {
		t.PGRole, t.PGPassword, t.Reader = a.f.reader, a.f.readerPW, true
	}
	a.mu.Lock()
	a.keys[key] = t
	a.mu.Unlock()
	return key, credID
}

// secrets lists every key and role password, which must never be logged.
func (a *testAuth) secrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []string{a.f.ownerPW, a.f.readerPW}
	for k := range a.keys {
		out = append(out, k)
	}
	return out
}

func (a *testAuth) AuthorizeWire(ctx context.Context, password, database string) (*WireTarget, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.keys[password]
	if !ok || a.revoked[t.CredentialID] {
		return nil, fmt.Errorf("check key: %w", ErrBadPassword)
	}
	if database != testDB || a.withdrawn[t.CredentialID] {
		return nil, fmt.Errorf("find %s: %w", database, ErrUnknownDatabase)
	}
	cp := *t
	return &cp, nil
}

func (a *testAuth) StillAuthorized(ctx context.Context, grants []Grant) ([]GrantStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, grants)
	out := make([]GrantStatus, len(grants))
	for i, g := range grants {
		switch {
		case a.revoked[g.CredentialID]:
			out[i] = GrantCredentialInvalid
		case a.withdrawn[g.CredentialID]:
			out[i] = GrantWithdrawn
		}
	}
	return out, nil
}

func (a *testAuth) withdraw(credID string) {
	a.mu.Lock()
	a.withdrawn[credID] = true
	a.mu.Unlock()
}

func (a *testAuth) revoke(credID string) {
	a.mu.Lock()
	a.revoked[credID] = true
	a.mu.Unlock()
}

// startProxy runs a Server on a loopback port for the test.
func startProxy(t *testing.T, cfg Config, auth Authorizer) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &testWriter{t: t}
	if ta, ok := auth.(*testAuth); ok {
		w.secrets = ta.secrets
	}
	srv := New(cfg, auth, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, ln.Addr().String()
}

// testWriter sends log lines to t.Log and fails the test if a line holds a
// known secret.
type testWriter struct {
	t       *testing.T
	mu      sync.Mutex
	secrets func() []string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSpace(string(p))) // shown when the test fails
	if w.secrets == nil {
		return len(p), nil
	}
	for _, s := range w.secrets() {
		if strings.Contains(string(p), s) {
			w.t.Errorf("log line contains a secret: %s", p)
		}
	}
	return len(p), nil
}

func dsn(addr, key, db, sslmode string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=anyone password=%s dbname=%s sslmode=%s connect_timeout=10", host, port, key, db, sslmode)
}

func connect(t *testing.T, addr, key, db, sslmode string) (*pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn(addr, key, db, sslmode))
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestConnect(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	_, tlsAddr := startProxy(t, Config{DevTLS: true}, auth)
	_, plainAddr := startProxy(t, Config{AllowPlaintext: true}, auth)
	for _, tc := range []struct {
		name, addr, sslmode, db string
		wantTLS                 bool
	}{
		{"tls", tlsAddr, "require", testDB, true},
		{"plaintext allowed", plainAddr, "disable", testDB, false},
		{"quoted name", tlsAddr, "require", `'"acct/notes"'`, true},
		{"url-encoded name", tlsAddr, "require", "acct%2Fnotes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := connect(t, tc.addr, key, tc.db, tc.sslmode)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			var user, db string
			var n int
			if err := conn.QueryRow(t.Context(), "SELECT current_user, current_database(), count(*) FROM notes").Scan(&user, &db, &n); err != nil {
				t.Fatal(err)
			}
			if user != f.owner || db != f.pgDB || n < 2 {
				t.Errorf("got user=%s db=%s rows=%d, want %s %s ≥2", user, db, n, f.owner, f.pgDB)
			}
			if v := conn.PgConn().ParameterStatus("server_version"); !strings.HasPrefix(v, "15") {
				t.Errorf("server_version ParameterStatus = %q", v)
			}
			_, isTLS := conn.PgConn().Conn().(*tls.Conn)
			if isTLS != tc.wantTLS {
				t.Errorf("TLS = %v, want %v", isTLS, tc.wantTLS)
			}
			// A prepared statement round trip (extended protocol).
			var got string
			if err := conn.QueryRow(t.Context(), "SELECT body FROM notes WHERE id = $1", 1).Scan(&got); err != nil || got != "hello" {
				t.Errorf("extended query: %q, %v", got, err)
			}
		})
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	_, addr := startProxy(t, Config{DevTLS: true}, auth)
	_, plainNoLoop := startProxy(t, Config{DevTLS: true}, auth)
	for _, tc := range []struct {
		name, addr, key, db, sslmode string
		code, msg                    string
	}{
		{"wrong key", addr, "v2_wrong", testDB, "require", "28P01", "the API key or token is invalid or revoked"},
		{"unknown database", addr, key, "acct/nope", "require", "3D000", "account/db"},
		{"malformed database", addr, key, "notes", "require", "3D000", "must be account/db"},
		{"no tls", plainNoLoop, key, testDB, "disable", "28000", "SSL required: connect with sslmode=require"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := connect(t, tc.addr, tc.key, tc.db, tc.sslmode)
			if err == nil {
				t.Fatal("connected, want an error")
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) || pe.Severity != "FATAL" {
				t.Fatalf("err = %v, want FATAL %s containing %q", err, tc.code, tc.msg)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error contains the key: %v", err)
			}
		})
	}
}

func TestReaderCannotWrite(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("r")
	_, addr := startProxy(t, Config{DevTLS: true}, auth)
	conn, err := connect(t, addr, key, testDB, "require")
	if err != nil {
		t.Fatal(err)
	}
	var body string
	if err := conn.QueryRow(t.Context(), "SELECT body FROM notes ORDER BY id LIMIT 1").Scan(&body); err != nil || body != "hello" {
		t.Fatalf("reader select: %q %v", body, err)
	}
	_, err = conn.Exec(t.Context(), "INSERT INTO notes (body) VALUES ('nope')")
	if code := pgCode(err); code != "42501" {
		t.Fatalf("insert as reader: %v, want SQLSTATE 42501 from PostgreSQL", err)
	}
	// The session survives the error.
	var one int
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after error: %d %v", one, err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		_, addr := startProxy(t, mode.config(Config{}), auth)
		conn, err := connect(t, addr, key, testDB, mode.sslmode())
		if err != nil {
			t.Fatal(err)
		}
		checkCancel(t, f, conn)
	})
}

// checkCancel runs pg_sleep(30) on conn, cancels it from the client once
// the backend runs it, and checks that it ends with 57014 and that conn
// works afterwards.
func checkCancel(t *testing.T, f *fixture, conn *pgx.Conn) {
	t.Helper()
	tag := "cancel_" + pgtest.RandHex(4)
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT pg_sleep(30) /* "+tag+" */")
		errc <- err
	}()
	waitQueryRunning(t, f, tag)
	if err := conn.PgConn().CancelRequest(t.Context()); err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	select {
	case err := <-errc:
		if pgCode(err) != "57014" {
			t.Fatalf("Exec = %v, want SQLSTATE 57014 (query_canceled)", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("pg_sleep(30) was not cancelled")
	}
	var one int
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after cancel: %d %v", one, err)
	}
}

// rawSession is a hand-driven protocol client, to observe exactly what the
// proxy sends.
type rawSession struct {
	conn   net.Conn
	fe     *pgproto3.Frontend
	params map[string]string
	key    *pgproto3.BackendKeyData
}

func rawConnect(t *testing.T, addr, key, db string) *rawSession {
	t.Helper()
	return rawConnectMode(t, tlsRelay, addr, key, db)
}

// relayMode is one way a session is relayed: over TLS (goroutines), or in
// plaintext by the event loop or by goroutines.
type relayMode struct {
	name      string
	plaintext bool
	goroutine bool
}

var (
	tlsRelay       = relayMode{name: "tls-loop"}
	plaintextRelay = relayMode{name: "plaintext-loop", plaintext: true}
	relayModes     = []relayMode{tlsRelay, {name: "tls-goroutines", goroutine: true}, plaintextRelay, {name: "plaintext-goroutines", plaintext: true, goroutine: true}}
)

// waitSessions waits until ok(srv.Sessions()), or fails with msg.
func waitSessions(t *testing.T, srv *Server, ok func(n int) bool, msg string) {
	t.Helper()
	testwait.Eventually(t, 20*time.Second, func() error {
		if n := srv.Sessions(); !ok(n) {
			return fmt.Errorf("%s: %d sessions open", msg, n)
		}
		return nil
	})
}

// waitQueryRunning waits until one backend runs a query containing tag.
func waitQueryRunning(t *testing.T, f *fixture, tag string) {
	t.Helper()
	admin, err := pgx.Connect(t.Context(), f.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	testwait.Eventually(t, 20*time.Second, func() error {
		var n int
		if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%'||$1||'%' AND pid <> pg_backend_pid()", tag).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			return fmt.Errorf("the query marked %s runs in %d backends, want 1", tag, n)
		}
		return nil
	})
}

// waitBackendGone waits until no backend's last query contains marker; after
// within it fails with msg, what pg_stat_activity still shows and more().
func waitBackendGone(t *testing.T, f *fixture, marker string, within time.Duration, msg string, more func() string) {
	t.Helper()
	admin, err := pgx.Connect(t.Context(), f.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	const where = "FROM pg_stat_activity WHERE position($1 in query) > 0 AND pid <> pg_backend_pid()"
	err = testwait.Wait(t.Context(), within, func() error {
		var n int
		if err := admin.QueryRow(t.Context(), "SELECT count(*) "+where, marker).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			return fmt.Errorf("%d backends", n)
		}
		return nil
	})
	if err != nil {
		var diag string
		_ = admin.QueryRow(t.Context(), `SELECT string_agg(format('pid %s state %s wait %s/%s since %s backend_start %s',
			pid, state, wait_event_type, wait_event, now() - state_change, backend_start), '; ') `+where, marker).Scan(&diag)
		if more != nil {
			diag += more()
		}
		t.Fatalf("%s: %s", msg, diag)
	}
}

// eachRelay runs fn as a parallel subtest for every relay mode.
func eachRelay(t *testing.T, fn func(t *testing.T, mode relayMode)) {
	t.Helper()
	for _, mode := range relayModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			fn(t, mode)
		})
	}
}

// config returns base set up for the mode.
func (m relayMode) config(base Config) Config {
	if m.plaintext {
		base.AllowPlaintext = true
	} else {
		base.DevTLS = true
	}
	base.GoroutineRelay = m.goroutine
	return base
}

func (m relayMode) sslmode() string {
	if m.plaintext {
		return "disable"
	}
	return "require"
}

func rawConnectMode(t *testing.T, mode relayMode, addr, key, db string) *rawSession {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	var conn net.Conn = c
	if !mode.plaintext {
		if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil || b[0] != 'S' {
			t.Fatalf("SSLRequest answer %q, %v", b[0], err)
		}
		conn = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	}
	rs := &rawSession{conn: conn, fe: pgproto3.NewFrontend(conn, conn), params: map[string]string{}}
	rs.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "x", "database": db}})
	if err := rs.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := rs.fe.Receive()
		if err != nil {
			t.Fatalf("startup: %v", err)
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			rs.fe.Send(&pgproto3.PasswordMessage{Password: key})
			if err := rs.fe.Flush(); err != nil {
				t.Fatal(err)
			}
		case *pgproto3.AuthenticationOk:
		case *pgproto3.ParameterStatus:
			rs.params[m.Name] = m.Value
		case *pgproto3.BackendKeyData:
			rs.key = &pgproto3.BackendKeyData{ProcessID: m.ProcessID, SecretKey: append([]byte(nil), m.SecretKey...)}
		case *pgproto3.ReadyForQuery:
			return rs
		case *pgproto3.ErrorResponse:
			t.Fatalf("startup error: %s %s", m.Code, m.Message)
		default:
			t.Fatalf("unexpected startup message %T", msg)
		}
	}
}

// waitFatal reads until an ErrorResponse and returns it; the connection must
// then be closed by the server.
func (rs *rawSession) waitFatal(t *testing.T) *pgproto3.ErrorResponse {
	t.Helper()
	for {
		msg, err := rs.fe.Receive()
		if err != nil {
			t.Fatalf("want a FATAL ErrorResponse, got %v", err)
		}
		if m, ok := msg.(*pgproto3.ErrorResponse); ok {
			got := *m
			if _, err := rs.fe.Receive(); err == nil {
				t.Errorf("connection still open after FATAL %s", got.Code)
			}
			return &got
		}
	}
}

func (rs *rawSession) query(t *testing.T, sql string) error {
	t.Helper()
	rs.fe.Send(&pgproto3.Query{String: sql})
	if err := rs.fe.Flush(); err != nil {
		return err
	}
	var qerr error
	for {
		msg, err := rs.fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			qerr = fmt.Errorf("%s: %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return qerr
		}
	}
}

func TestStartupMessages(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	_, addr := startProxy(t, Config{DevTLS: true}, auth)
	rs := rawConnect(t, addr, key, testDB)
	if rs.key == nil || rs.key.ProcessID == 0 || len(rs.key.SecretKey) != 4 {
		t.Fatalf("BackendKeyData = %+v", rs.key)
	}
	for _, p := range []string{"server_version", "client_encoding", "DateStyle", "integer_datetimes"} {
		if rs.params[p] == "" {
			t.Errorf("ParameterStatus %s missing (got %v)", p, rs.params)
		}
	}
	// The client's pid is the proxy's own, not the backend's.
	var pid uint32
	rs.fe.Send(&pgproto3.Query{String: "SELECT pg_backend_pid()"})
	_ = rs.fe.Flush()
	for {
		msg, err := rs.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := msg.(*pgproto3.DataRow); ok {
			_, _ = fmt.Sscan(string(d.Values[0]), &pid)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if pid == 0 || pid == rs.key.ProcessID {
		t.Errorf("backend pid %d, client key pid %d: want a mapped key", pid, rs.key.ProcessID)
	}
}

func TestIdleClose(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		_, addr := startProxy(t, mode.config(Config{IdleTimeout: time.Second}), auth)
		t.Run("idle session gets FATAL 57P05", func(t *testing.T) {
			t.Parallel()
			rs := rawConnectMode(t, mode, addr, key, testDB)
			m := rs.waitFatal(t)
			if m.Code != "57P05" || m.Severity != "FATAL" || m.Message != "terminating connection due to idle timeout (1s); reconnect" {
				t.Fatalf("got %s %s %q", m.Severity, m.Code, m.Message)
			}
		})
		t.Run("a query longer than the timeout is not cut", func(t *testing.T) {
			t.Parallel()
			rs := rawConnectMode(t, mode, addr, key, testDB)
			if err := rs.query(t, "SELECT pg_sleep(2.5)"); err != nil {
				t.Fatalf("long query: %v", err)
			}
			// Then it idles out.
			if m := rs.waitFatal(t); m.Code != "57P05" {
				t.Fatalf("got %s %s", m.Code, m.Message)
			}
		})
		t.Run("pgx sees the FATAL on its next query", func(t *testing.T) {
			t.Parallel()
			srv, addr := startProxy(t, mode.config(Config{IdleTimeout: time.Second}), auth)
			conn, err := connect(t, addr, key, testDB, mode.sslmode())
			if err != nil {
				t.Fatal(err)
			}
			waitSessions(t, srv, func(n int) bool { return n == 0 }, "the idle session was not closed")
			var one int
			err = conn.QueryRow(t.Context(), "SELECT 1").Scan(&one)
			if pgCode(err) != "57P05" {
				t.Fatalf("query on an idle-closed connection: %v, want 57P05", err)
			}
		})
	})
}

func TestCaps(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	for _, tc := range []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"per database", Config{DevTLS: true, MaxConnsPerDatabase: 2}, "too many connections for database acct/notes: at most 2 sessions per database"},
		{"global", Config{DevTLS: true, MaxConns: 2}, "too many connections: this bitd accepts at most 2 PostgreSQL sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, addr := startProxy(t, tc.cfg, auth)
			c1, err := connect(t, addr, key, testDB, "require")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := connect(t, addr, key, testDB, "require"); err != nil {
				t.Fatal(err)
			}
			_, err = connect(t, addr, key, testDB, "require")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "53300" || !strings.Contains(pe.Message, tc.msg) {
				t.Fatalf("third connection: %v, want 53300 %q", err, tc.msg)
			}
			c1.Close(t.Context())
			waitSessions(t, srv, func(n int) bool { return n <= 1 }, "the closed session still counts")
			if _, err := connect(t, addr, key, testDB, "require"); err != nil {
				t.Fatalf("after closing one: %v", err)
			}
		})
	}
}

func TestTerminate(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		end  func(srv *Server, auth *testAuth, credW string)
		msg  string
	}{
		{"TerminateCredential", Config{RevalidateEvery: -1},
			func(srv *Server, _ *testAuth, credW string) { srv.TerminateCredential(credW) }, "was revoked"},
		{"revalidation", Config{RevalidateEvery: 100 * time.Millisecond},
			func(_ *Server, auth *testAuth, credW string) { auth.revoke(credW) }, "was revoked"},
		{"TerminateDatabase", Config{RevalidateEvery: -1},
			func(srv *Server, _ *testAuth, _ string) { srv.TerminateDatabase(f.dbID) }, "database acct/notes was deleted"},
		{"withdrawn", Config{RevalidateEvery: 100 * time.Millisecond},
			func(_ *Server, auth *testAuth, credW string) { auth.withdraw(credW) }, "permission to database acct/notes was withdrawn"},
		{"Recheck", Config{RevalidateEvery: -1},
			func(srv *Server, auth *testAuth, credW string) {
				auth.withdraw(credW)
				if err := srv.Recheck(context.Background(), f.dbID); err != nil {
					panic(err)
				}
			}, "permission to database acct/notes was withdrawn"},
	} {
		for _, mode := range relayModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				testTerminate(t, mode, mode.config(tc.cfg), tc.end, tc.msg)
			})
		}
	}
}

func testTerminate(t *testing.T, mode relayMode, cfg Config, end func(*Server, *testAuth, string), msg string) {
	f := sharedDB(t)
	auth := newTestAuth(f)
	keyW, credW := auth.key("w")
	srv, addr := startProxy(t, cfg, auth)
	idle := rawConnectMode(t, mode, addr, keyW, testDB)
	busy := rawConnectMode(t, mode, addr, keyW, testDB)
	sleep := "SELECT pg_sleep(30) /* terminate_" + pgtest.RandHex(4) + " */"
	busy.fe.Send(&pgproto3.Query{String: sleep})
	if err := busy.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 20*time.Second, func() error {
		if srv.snapshot(func(ss *session) bool { return ss.inFlight() > 0 }) == nil {
			return errors.New("no session has a query in flight")
		}
		return nil
	})
	start := time.Now()
	busySS := srv.snapshot(func(ss *session) bool { return ss.inFlight() > 0 })
	end(srv, auth, credW)
	for _, rs := range []*rawSession{idle, busy} {
		m := rs.waitFatal(t)
		if m.Code != "57P01" || !strings.Contains(m.Message, msg) {
			t.Errorf("got %s %q, want 57P01 containing %q", m.Code, m.Message, msg)
		}
	}
	t.Logf("both sessions ended %v after the termination", time.Since(start))
	if cfg.RevalidateEvery > 0 && strings.Contains(msg, "revoked") {
		if _, err := connect(t, addr, keyW, testDB, mode.sslmode()); pgCode(err) != "28P01" {
			t.Errorf("reconnect with a revoked key: %v, want 28P01", err)
		}
	}
	if strings.Contains(msg, "withdrawn") {
		if _, err := connect(t, addr, keyW, testDB, mode.sslmode()); pgCode(err) != "3D000" {
			t.Errorf("reconnect after the permission was withdrawn: %v, want 3D000", err)
		}
	}
	// The cancelled pg_sleep ended its backend: nothing of the session is
	// left on the server.
	waitBackendGone(t, f, sleep, 10*time.Second, "the terminated session's backend is still there", func() (diag string) {
		for _, ss := range busySS {
			diag += fmt.Sprintf("; proxy session: backend pid %d, inflight %d, cancels sent %d", ss.backendPID, ss.inFlight(), ss.cancels.Load())
		}
		return diag
	})
}

func TestOtherCredentialSurvives(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	keyW, credW := auth.key("w")
	keyR, _ := auth.key("r")
	srv, addr := startProxy(t, Config{DevTLS: true}, auth)
	w := rawConnect(t, addr, keyW, testDB)
	r := rawConnect(t, addr, keyR, testDB)
	srv.TerminateCredential(credW)
	if m := w.waitFatal(t); m.Code != "57P01" {
		t.Fatalf("revoked session: %s %s", m.Code, m.Message)
	}
	if err := r.query(t, "SELECT 1"); err != nil {
		t.Fatalf("other credential's session: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := New(mode.config(Config{}), auth, nil)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		rs := rawConnectMode(t, mode, ln.Addr().String(), key, testDB)
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		if m := rs.waitFatal(t); m.Code != "57P01" || !strings.Contains(m.Message, "shutting down") {
			t.Fatalf("got %s %q", m.Code, m.Message)
		}
		if srv.Sessions() != 0 {
			t.Fatalf("sessions after Shutdown: %d", srv.Sessions())
		}
	})
}

func TestParseDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"alice/db", "alice/db", true},
		{`"alice/db"`, "alice/db", true},
		{"alice%2Fdb", "alice/db", true},
		{"%22alice%2Fdb%22", "alice/db", true},
		{" alice/My-DB_1 ", "alice/My-DB_1", true},
		{"alice", "", false},
		{"alice/", "", false},
		{"/db", "", false},
		{"-alice/db", "", false},
		{"alice/db/x", "", false},
		{"alice/db;drop", "", false},
		{"alice%zz", "", false},
		{"a/" + strings.Repeat("x", 24), "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := parseDatabase(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("parseDatabase(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}
