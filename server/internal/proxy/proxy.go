package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Config configures a Server. The zero value (with DevTLS or TLS set) is
// usable: see each field for its default.
type Config struct {
	// Tracer, when set, traces each session that gets past its start-up
	// message (a "pg.session" span, trace.go); nil traces nothing.
	Tracer trace.Tracer
	// TLS is the server certificate configuration offered after an
	// SSLRequest. When nil and DevTLS is set, a self-signed certificate for
	// localhost/127.0.0.1/::1 is generated at start-up. When nil without
	// DevTLS, SSLRequest is answered with 'N' (no TLS).
	TLS *tls.Config
	// DevTLS generates a self-signed certificate when TLS is nil.
	DevTLS bool
	// AllowPlaintext accepts a non-TLS startup from loopback clients (for
	// local development). Plaintext from other addresses is always refused
	// with FATAL 28000, because the password is an API key.
	AllowPlaintext bool
	// IdleTimeout closes a session with no client traffic for this long that
	// is not running a query (FATAL 57P05). Default 5 minutes; negative
	// disables it.
	IdleTimeout time.Duration
	// MaxConns caps the sessions of the whole server; 0 means no cap.
	MaxConns int
	// MaxConnsPerDatabase caps the sessions per platform database; 0 means
	// no cap. Both caps answer FATAL 53300 "too many connections".
	MaxConnsPerDatabase int
	// RevalidateEvery is how often open sessions re-check, with
	// Authorizer.StillAuthorized (one call for all sessions, one Grant per
	// distinct credential, database and role), that their credential is
	// still valid and still grants their database with their role. This
	// covers revocations and permission changes made on other replicas.
	// Default 2 s; negative disables it.
	RevalidateEvery time.Duration
	// ReaderIdleInTransaction ends a reader session (WireTarget.Reader)
	// that stays idle inside a transaction block for this long (FATAL
	// 25P03), so that a reader cannot hold locks that block the owner's
	// DDL. The proxy enforces it from the ReadyForQuery status it relays,
	// whatever the session SETs. Default 60 s; negative disables it.
	ReaderIdleInTransaction time.Duration
	// ReaderLockTimeout is sent as lock_timeout in the start-up packet of
	// reader sessions, with idle_in_transaction_session_timeout set to
	// ReaderIdleInTransaction (a first line: the session may change both).
	// Default 10 s; negative sends neither.
	ReaderLockTimeout time.Duration
	// StartupTimeout bounds the TLS handshake, the startup packet and the
	// password exchange. Default 30 s.
	StartupTimeout time.Duration
	// BackendConnectTimeout bounds the backend connection set-up. Default 15 s.
	BackendConnectTimeout time.Duration
	// GoroutineRelay relays every session with two goroutines. By default
	// (on Linux) every session, TLS or not, is relayed by one shared epoll
	// loop, which costs less per message.
	GoroutineRelay bool
	// Admit, when set, is asked for every session that passed the caps
	// above, before its backend connection is made (bitd's connection
	// budget). An error refuses the session with FATAL 53300 and the
	// error's text, which must be meant for the client; otherwise release
	// is called once when the session ends.
	Admit func(ctx context.Context, t *WireTarget) (release func(), err error)
	// ClientAddr, when set, runs first on every accepted connection, before
	// any PostgreSQL message is read and before StartupTimeout's deadline
	// is set (it bounds its own reads): it may read a PROXY protocol header
	// from the connection (and nothing after it) and returns the client's
	// address, which the logs show and the plaintext-from-loopback check
	// (AllowPlaintext) uses. An error ends the connection with FATAL 08P01
	// and the error's text. Unset, the client is the TCP peer.
	ClientAddr func(c net.Conn) (net.Addr, error)
	// CancelRelay, when set with CancelKey, carries a CancelRequest whose
	// key names no session of this server to the other replicas, whose
	// RelayedCancel cancels the query when they hold the session
	// (cancel.go). CancelKey is DeriveCancelKey of the server secret the
	// replicas share.
	CancelRelay CancelRelay
	CancelKey   []byte
}

// WireTarget is what an authorized wire connection connects to.
type WireTarget struct {
	DatabaseID   string // platform database id (for caps and TerminateDatabase)
	CredentialID string // id of the API key or token (for TerminateCredential)
	PGDatabase   string // real PostgreSQL database name
	PGRole       string // login role the caller's permission maps to
	PGPassword   string // that role's password; never logged
	BackendAddr  string // host:port of the PostgreSQL server; loopback hosts are reached without TLS; a host that is an absolute path is the directory of the server's Unix socket
	Reader       bool   // PGRole only reads (a READER permission): Config.ReaderIdleInTransaction and ReaderLockTimeout apply
	Cluster      string // the PostgreSQL cluster holding the database when bitd places databases on several ("" for the default one): named when it cannot be reached
}

// clientKey keys the client's address in AuthorizeWire's context.
type clientKey struct{}

// ClientFrom returns the address of the client in the context of an
// Authorizer's AuthorizeWire call: the TCP peer, or the address a trusted
// proxy named (Config.ClientAddr). nil in other contexts.
func ClientFrom(ctx context.Context) net.Addr {
	a, _ := ctx.Value(clientKey{}).(net.Addr)
	return a
}

// Authorizer checks wire credentials. Implementations must be safe for
// concurrent use.
type Authorizer interface {
	// AuthorizeWire checks password (an API key or access token) and the
	// caller's access to database ("account/db"). Errors wrap
	// ErrBadPassword or ErrUnknownDatabase (also for databases the caller
	// may not see); other errors are logged (so they must not contain the
	// password), retried twice, then reported as internal errors.
	AuthorizeWire(ctx context.Context, password, database string) (*WireTarget, error)
	// StillAuthorized reports, for each grant, whether its credential is
	// still valid and still maps to its database with its login role
	// (GrantHolds); a revoked or expired credential, a database made
	// private, a removed collaborator, a service account's changed
	// database list or a changed role end the sessions opened with that
	// grant. The result has one entry per grant. An error ends no session
	// at once: sessions whose grants could not be checked for
	// RevalidateGrace are ended.
	StillAuthorized(ctx context.Context, grants []Grant) ([]GrantStatus, error)
}

// Grant is what a session was admitted with: a credential, a platform
// database and the login role the credential's permission mapped to.
type Grant struct {
	CredentialID string
	DatabaseID   string
	PGRole       string
}

// GrantStatus is Authorizer.StillAuthorized's verdict on one Grant.
type GrantStatus uint8

const (
	// GrantHolds: the credential still grants the database with the role.
	GrantHolds GrantStatus = iota
	// GrantCredentialInvalid: the key or token was revoked or has expired.
	GrantCredentialInvalid
	// GrantWithdrawn: the credential is valid but no longer grants the
	// database, or grants it with another role.
	GrantWithdrawn
)

// RoleRepairer is implemented by an Authorizer that can reset a backend
// login role. SQL run as a role may change the role's own password (ALTER
// ROLE CURRENT_USER PASSWORD …), after which the server refuses bitd's
// logins as it. When the backend refuses a session's login (SQLSTATE class
// 28) and the Authorizer is a RoleRepairer, the proxy calls RepairRole and
// connects once more.
type RoleRepairer interface {
	RepairRole(ctx context.Context, t *WireTarget) error
}

var (
	// ErrBadPassword means the password is not a valid API key or token.
	ErrBadPassword = errors.New("the API key or token is invalid or revoked")
	// ErrUnknownDatabase means the database does not exist or is not
	// visible to the caller.
	ErrUnknownDatabase = errors.New("database does not exist or is not visible to this credential")
	// ErrLoginLimited, wrapped by an AuthorizeWire error, means the
	// client's address made too many failed attempts: the connection is
	// refused with FATAL 28000 and the error's text (which must be meant
	// for the client), without retries.
	ErrLoginLimited = errors.New("too many failed logins from this address")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("proxy: server closed")
)

// Defaults.
const (
	DefaultIdleTimeout             = 5 * time.Minute
	DefaultRevalidateEvery         = 2 * time.Second
	DefaultReaderIdleInTransaction = 60 * time.Second
	DefaultReaderLockTimeout       = 10 * time.Second
	// RevalidateGrace is how long sessions stay open while
	// StillAuthorized keeps failing (say, the metadata database is
	// restarting) before they are ended.
	RevalidateGrace = 30 * time.Second
)

// Server is a PostgreSQL wire proxy. Create it with New.
type Server struct {
	cfg    Config
	auth   Authorizer
	log    *slog.Logger
	tls    *tls.Config
	tlsErr error

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	pending   map[net.Conn]struct{} // connections still in startup
	sessions  map[*session]struct{}
	byPID     map[uint32]*session
	perDB     map[string]int
	total     int // sessions counted against MaxConns (including those connecting)

	wg        sync.WaitGroup
	revalOnce sync.Once
	stop      chan struct{}

	// Counters for Stats (metrics).
	sessionsTotal, bytesToBackend, bytesToClient atomic.Int64

	// relay is the cross-replica cancel relay's state; relayed counts the
	// cancel requests handed to the other replicas, relayedIn those from
	// them that cancelled a session here.
	relay              *relayState
	relayed, relayedIn atomic.Int64
}

// New returns a Server. logger may be nil (logs are discarded).
func New(cfg Config, auth Authorizer, logger *slog.Logger) *Server {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RevalidateEvery == 0 {
		cfg.RevalidateEvery = DefaultRevalidateEvery
	}
	if cfg.ReaderIdleInTransaction == 0 {
		cfg.ReaderIdleInTransaction = DefaultReaderIdleInTransaction
	}
	if cfg.ReaderLockTimeout == 0 {
		cfg.ReaderLockTimeout = DefaultReaderLockTimeout
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = 30 * time.Second
	}
	if cfg.BackendConnectTimeout <= 0 {
		cfg.BackendConnectTimeout = 15 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		relay:     newRelayState(),
		cfg:       cfg,
		auth:      auth,
		log:       logger,
		listeners: map[net.Listener]struct{}{},
		pending:   map[net.Conn]struct{}{},
		sessions:  map[*session]struct{}{},
		byPID:     map[uint32]*session{},
		perDB:     map[string]int{},
		stop:      make(chan struct{}),
	}
	switch {
	case cfg.TLS != nil:
		s.tls = cfg.TLS.Clone()
	case cfg.DevTLS:
		s.tls, s.tlsErr = selfSignedTLS()
	}
	if s.tls != nil && s.tls.MinVersion < tls.VersionTLS12 {
		s.tls.MinVersion = tls.VersionTLS12
	}
	return s
}

// Serve accepts connections on ln until Shutdown (then it returns
// ErrServerClosed) or until ln fails. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.tlsErr != nil {
		ln.Close()
		return fmt.Errorf("proxy: generate the development TLS certificate: %w", s.tlsErr)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	s.revalOnce.Do(func() {
		if s.cfg.RevalidateEvery > 0 {
			s.wg.Add(1)
			go s.revalidateLoop()
		}
	})
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var t interface{ Temporary() bool }
			if errors.As(err, &t) && t.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("proxy: accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.pending[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops accepting connections, closes connections that are still
// starting up, ends idle sessions at once and sessions running a query as
// soon as it finishes (FATAL 57P01), and waits for them. When ctx ends first,
// the remaining sessions are cut and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.pending {
		c.Close()
	}
	s.mu.Unlock()
	msg := fatal("57P01", "terminating connection because bitd is shutting down; reconnect")
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n := 0
		for _, ss := range s.snapshot(nil) {
			n++
			if ss.inFlight() == 0 {
				ss.terminate(msg, false)
			}
		}
		if n == 0 {
			s.wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			for _, ss := range s.snapshot(nil) {
				ss.terminate(msg, true)
			}
			s.wg.Wait()
			return fmt.Errorf("proxy: shutdown: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// TerminateCredential ends every session opened with the API key or token
// credentialID now (FATAL 57P01; a running query is cancelled).
func (s *Server) TerminateCredential(credentialID string) {
	msg := revokedMsg()
	for _, ss := range s.snapshot(func(ss *session) bool { return ss.target.CredentialID == credentialID }) {
		ss.terminate(msg, true)
	}
}

// TerminateDatabase ends every session of the platform database databaseID
// now (FATAL 57P01; a running query is cancelled).
func (s *Server) TerminateDatabase(databaseID string) {
	for _, ss := range s.snapshot(func(ss *session) bool { return ss.target.DatabaseID == databaseID }) {
		ss.terminate(fatal("57P01", fmt.Sprintf("terminating connection because database %s was deleted", ss.dbName)), true)
	}
}

// Stats are the proxy's sessions and relayed bytes.
type Stats struct {
	Sessions                      int   // open now
	SessionsTotal                 int64 // registered since New
	BytesToBackend, BytesToClient int64 // relayed since New
	// CancelsRelayed: cancel requests for unknown keys handed to the other
	// replicas; CancelsRelayedIn: relayed ones that cancelled a session
	// here (since New).
	CancelsRelayed, CancelsRelayedIn int64
}

// Stats reads the proxy's counters (for metrics).
func (s *Server) Stats() Stats {
	return Stats{Sessions: s.Sessions(), SessionsTotal: s.sessionsTotal.Load(),
		BytesToBackend: s.bytesToBackend.Load(), BytesToClient: s.bytesToClient.Load(),
		CancelsRelayed: s.relayed.Load(), CancelsRelayedIn: s.relayedIn.Load()}
}

// Sessions returns the number of open relayed sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) snapshot(keep func(*session) bool) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		if keep == nil || keep(ss) {
			out = append(out, ss)
		}
	}
	return out
}

// reserve counts a new session against the caps. It returns a FATAL to send
// when a cap is reached.
func (s *Server) reserve(dbID, dbName string) *errorMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fatal("57P01", "bitd is shutting down; reconnect")
	}
	if s.cfg.MaxConns > 0 && s.total >= s.cfg.MaxConns {
		return fatal("53300", fmt.Sprintf("too many connections: this bitd accepts at most %d PostgreSQL sessions; close idle connections or lower your pool's MaxConns", s.cfg.MaxConns))
	}
	if s.cfg.MaxConnsPerDatabase > 0 && s.perDB[dbID] >= s.cfg.MaxConnsPerDatabase {
		return fatal("53300", fmt.Sprintf("too many connections for database %s: at most %d sessions per database; close idle connections or lower your pool's MaxConns", dbName, s.cfg.MaxConnsPerDatabase))
	}
	s.total++
	s.perDB[dbID]++
	return nil
}

func (s *Server) release(dbID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perDB[dbID]--; s.perDB[dbID] <= 0 {
		delete(s.perDB, dbID)
	}
}

// register adds a relayed session (no longer a pending connection c) and
// assigns its client-facing cancel key.
func (s *Server) register(ss *session, c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	delete(s.pending, c)
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if pid == 0 || s.byPID[pid] != nil {
			continue
		}
		ss.clientPID = pid
		copy(ss.clientSecret[:], b[4:])
		s.byPID[pid] = ss
		break
	}
	s.sessions[ss] = struct{}{}
	s.sessionsTotal.Add(1)
	return true
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[ss]; !ok {
		return
	}
	delete(s.sessions, ss)
	delete(s.byPID, ss.clientPID)
}

// lookupCancel finds the session a client's cancel key belongs to.
func (s *Server) lookupCancel(pid uint32, secret []byte) *session {
	s.mu.Lock()
	ss := s.byPID[pid]
	s.mu.Unlock()
	if ss == nil || len(secret) != len(ss.clientSecret) || subtle.ConstantTimeCompare(secret, ss.clientSecret[:]) != 1 {
		return nil
	}
	return ss
}
