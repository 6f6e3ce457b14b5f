package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitkit-dev/bitkit/internal/pgalive"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

const relayBufSize = 64 << 10

// handle runs one client connection through its phases: negotiate the
// start-up, authorize the password, connect the backend, greet the client,
// then relay until either side ends.
func (s *Server) handle(c net.Conn) {
	defer s.wg.Done()
	h := &handshake{srv: s, raw: c, conn: c, client: c.RemoteAddr()}
	defer func() {
		s.mu.Lock()
		delete(s.pending, c)
		s.mu.Unlock()
		if !h.started {
			h.conn.Close()
		}
	}()
	if s.cfg.ClientAddr != nil {
		a, err := s.cfg.ClientAddr(c)
		if err != nil {
			s.log.Info("proxy: connection refused", "peer", c.RemoteAddr().String(), "err", err)
			s.sendFatal(c, fatal("08P01", err.Error()))
			return
		}
		h.client = a
	}
	h.remote = h.client.String()
	_ = c.SetDeadline(time.Now().Add(s.cfg.StartupTimeout))
	if !h.negotiate() {
		return
	}
	password, ok := h.askPassword()
	if !ok {
		return
	}
	st, sctx := s.startSession(h) // trace.go; nil (and no span) unless tracing
	defer st.end()
	ctx, cancel := context.WithTimeout(sctx, s.cfg.BackendConnectTimeout)
	defer cancel()
	target, ok := h.authorize(ctx, password)
	if !ok {
		return
	}
	st.event("authorized", "connect")
	hc, admitted, ok := h.connect(ctx, target)
	if !ok {
		return
	}
	st.event("backend connected", "greet")
	ss, ok := h.greet(target, hc, admitted)
	if !ok {
		s.release(target.DatabaseID)
		if admitted != nil {
			admitted()
		}
		return
	}
	h.started = true
	st.event("relaying", "relay")
	s.log.Debug("proxy: session opened", "remote", h.remote, "database", h.dbName, "database_id", target.DatabaseID,
		"credential_id", target.CredentialID, "role", target.PGRole)
	ss.run()
}

// handshake is a client connection before its session starts: what the
// phases of handle learn and hand on to the next.
type handshake struct {
	srv     *Server
	raw     net.Conn // the accepted connection
	conn    net.Conn // raw, or the TLS connection over it
	client  net.Addr // the client: raw's peer, or the address a trusted proxy named (Config.ClientAddr)
	remote  string   // client, for logs
	pkt     *startupPacket
	prefix  []byte // a NegotiateProtocolVersion to send before the next message, or nil
	dbName  string // account/db
	started bool   // the session owns conn (handle must not close it)
}

// negotiate reads start-up packets until the StartupMessage: it answers
// SSLRequest (with TLS when configured) and GSSENCRequest ('N'), and
// forwards a CancelRequest. It then checks the StartupMessage: TLS unless
// plaintext is allowed from a loopback address, protocol 3.0 (a newer minor
// version or protocol options get a NegotiateProtocolVersion, sent with the
// next message), a database name account/db, no replication. false means
// the connection is over (the client was told why when it can be).
func (h *handshake) negotiate() bool {
	s := h.srv
	isTLS := false
	for {
		pkt, err := readStartup(h.conn)
		if err != nil {
			if errors.Is(err, errProtocol) {
				s.sendFatal(h.conn, fatal("08P01", "invalid startup packet: "+err.Error()))
			}
			return false
		}
		h.pkt = pkt
		switch {
		case pkt.code == codeSSL:
			if isTLS || s.tls == nil {
				if isTLS {
					return false
				}
				if _, err := h.conn.Write([]byte{'N'}); err != nil {
					return false
				}
				continue
			}
			if _, err := h.conn.Write([]byte{'S'}); err != nil {
				return false
			}
			tc := tls.Server(wrapTLS(h.conn), s.tls)
			if err := tc.Handshake(); err != nil {
				s.log.Debug("proxy: TLS handshake failed", "remote", h.remote, "err", err)
				return false
			}
			h.conn, isTLS = tc, true
			continue
		case pkt.code == codeGSSEnc:
			if _, err := h.conn.Write([]byte{'N'}); err != nil {
				return false
			}
			continue
		case pkt.code == codeCancel:
			s.forwardCancel(pkt.pid, pkt.secret)
			return false
		}
		break
	}

	if !isTLS && !(s.cfg.AllowPlaintext && isLoopback(h.client)) {
		msg := "SSL required: connect with sslmode=require"
		if s.cfg.AllowPlaintext {
			msg += " (plaintext is accepted only from loopback addresses)"
		}
		s.sendFatal(h.conn, fatal("28000", msg))
		return false
	}
	pkt := h.pkt
	if pkt.code != 3<<16 || len(pkt.options) > 0 {
		// Downgrade 3.x (x > 0) and refuse protocol options: the relay speaks 3.0.
		h.prefix, _ = (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: pkt.options}).Encode(h.prefix)
	}
	rawDB := pkt.params["database"]
	if rawDB == "" {
		rawDB = pkt.params["user"] // PostgreSQL's default
	}
	dbName, valid := parseDatabase(rawDB)
	if !valid {
		s.sendFatal(h.conn, fatal("3D000", fmt.Sprintf("database %s does not exist: the database name must be account/db (e.g. dbname=alice/mydb; in a URL write alice%%2Fmydb)", quoteName(rawDB))), h.prefix...)
		return false
	}
	if v := strings.ToLower(pkt.params["replication"]); v != "" && v != "false" && v != "off" && v != "0" && v != "no" {
		s.sendFatal(h.conn, fatal("0A000", "replication connections are not supported through the bitd proxy"), h.prefix...)
		return false
	}
	h.dbName = dbName
	return true
}

// askPassword asks for a cleartext password (after the pending
// NegotiateProtocolVersion, if any) and reads it: the API key or access
// token. false means the connection is over; psql, for one, closes it here
// to prompt for the password, then reconnects.
func (h *handshake) askPassword() (string, bool) {
	out, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(h.prefix)
	if _, err := h.conn.Write(out); err != nil {
		return "", false
	}
	password, err := readPassword(h.conn)
	if err != nil {
		if errors.Is(err, errProtocol) {
			h.srv.sendFatal(h.conn, fatal("08P01", err.Error()))
		}
		return "", false
	}
	if password == "" {
		h.srv.sendFatal(h.conn, fatal("28P01", "password authentication failed: the API key or token is invalid or revoked"))
		return "", false
	}
	return password, true
}

// authorize asks the access layer (Config's Authorizer) what the
// password may reach in the database named at start-up, retrying a check
// that failed for another reason than the answer, and turns a refusal into
// the client's FATAL: 28P01 for a bad password, 28000 for an address over
// its limit of failures (ErrLoginLimited), 3D000 for a database that does
// not exist or is not the credential's, 08006 for a cluster that is down,
// XX000 otherwise. The context carries the client's address (ClientFrom).
func (h *handshake) authorize(ctx context.Context, password string) (*WireTarget, bool) {
	s, dbName := h.srv, h.dbName
	ctx = context.WithValue(ctx, clientKey{}, h.client)
	target, err := s.auth.AuthorizeWire(ctx, password, dbName)
	for attempt := 1; attempt < 3 && err != nil && !errors.Is(err, ErrBadPassword) && !errors.Is(err, ErrUnknownDatabase) && !errors.Is(err, ErrLoginLimited); attempt++ {
		// A read-only check: retry it (e.g. the metadata pool held
		// connections broken by a PostgreSQL restart).
		s.log.Warn("proxy: authorization failed; retrying", "database", dbName, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt*attempt) * 50 * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
		target, err = s.auth.AuthorizeWire(ctx, password, dbName)
	}
	switch {
	case errors.Is(err, ErrBadPassword):
		s.log.Info("proxy: password authentication failed", "remote", h.remote, "database", dbName)
		s.sendFatal(h.conn, fatal("28P01", "password authentication failed: the API key or token is invalid or revoked"))
		return nil, false
	case errors.Is(err, ErrLoginLimited):
		s.log.Info("proxy: login limited", "remote", h.remote, "database", dbName)
		s.sendFatal(h.conn, fatal("28000", err.Error()))
		return nil, false
	case errors.Is(err, ErrUnknownDatabase):
		s.sendFatal(h.conn, fatal("3D000", fmt.Sprintf("database %s does not exist or this API key cannot access it: use the full name account/db (e.g. dbname=alice/mydb)", quoteName(dbName))))
		return nil, false
	case clusterUnavailable(err):
		// Several clusters: the one holding the database is down.
		s.sendFatal(h.conn, fatal("08006", err.Error()))
		return nil, false
	case err != nil:
		s.log.Error("proxy: authorization failed", "remote", h.remote, "database", dbName, "err", err)
		s.sendFatal(h.conn, fatal("XX000", "bitd could not check the credential; try again later"))
		return nil, false
	}
	return target, true
}

// connect takes a session slot of the database (reserve) and the
// connection budget's admission (Config.Admit), then opens the backend
// connection as the target's role with the client's start-up parameters.
// On success the caller owns the slot and admitted (Config.Admit's release,
// or nil); on failure both are given back and the client got its FATAL.
func (h *handshake) connect(ctx context.Context, target *WireTarget) (hc *pgconn.HijackedConn, admitted func(), ok bool) {
	s, dbName := h.srv, h.dbName
	if fm := s.reserve(target.DatabaseID, dbName); fm != nil {
		s.sendFatal(h.conn, fm)
		return nil, nil, false
	}
	defer func() {
		if !ok {
			s.release(target.DatabaseID)
			if admitted != nil {
				admitted()
			}
		}
	}()
	if s.cfg.Admit != nil {
		var err error
		if admitted, err = s.cfg.Admit(ctx, target); err != nil {
			s.log.Info("proxy: session refused by the connection budget", "database", dbName, "database_id", target.DatabaseID, "err", err)
			s.sendFatal(h.conn, fatal("53300", err.Error()))
			return nil, admitted, false
		}
	}
	hc, err := s.openBackend(ctx, target, dbName, s.backendParams(target, h.pkt.params))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			s.sendFatal(h.conn, fatal(pgErr.Code, pgErr.Message))
		} else if errors.Is(err, errRoleTampered) {
			s.sendFatal(h.conn, fatal("57P03", fmt.Sprintf("the PostgreSQL role of %s was changed by SQL run as it (ALTER ROLE … SET) and bitd could not reset it yet; try again later", dbName)))
		} else if target.Cluster != "" {
			s.sendFatal(h.conn, fatal("08006", fmt.Sprintf("bitd could not connect to the PostgreSQL cluster %q that holds %s (it is unreachable; databases on other clusters are not affected); try again later", target.Cluster, dbName)))
		} else {
			s.sendFatal(h.conn, fatal("08006", fmt.Sprintf("bitd could not connect to the PostgreSQL server of %s; try again later", dbName)))
		}
		s.log.Warn("proxy: backend connection failed", "database", dbName, "database_id", target.DatabaseID, "err", err)
		return nil, admitted, false
	}
	return hc, admitted, true
}

// greet registers the session (which gives it the cancel key the client
// sees) and tells the client it is in: AuthenticationOk, the backend's
// ParameterStatus messages in name order, BackendKeyData with the
// session's own key, and the backend's ReadyForQuery. It clears the
// start-up deadline. false means the connection is over (bitd is shutting
// down, or the client left); the backend connection is closed then, and
// the caller still holds the session slot and admission.
func (h *handshake) greet(target *WireTarget, hc *pgconn.HijackedConn, admitted func()) (*session, bool) {
	s := h.srv
	ss := &session{
		srv:           s,
		client:        h.conn,
		backend:       hc.Conn,
		dbName:        h.dbName,
		target:        *target,
		backendPID:    hc.PID,
		backendSecret: hc.SecretKey,
		remote:        h.remote,
		done:          make(chan struct{}),
	}
	ss.target.PGPassword = ""
	ss.admitted = admitted
	if !s.register(ss, h.raw) {
		hc.Conn.Close()
		s.sendFatal(h.conn, fatal("57P01", "bitd is shutting down; reconnect"))
		return nil, false
	}
	out, _ := (&pgproto3.AuthenticationOk{}).Encode(nil)
	keys := make([]string, 0, len(hc.ParameterStatuses))
	for k := range hc.ParameterStatuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out, _ = (&pgproto3.ParameterStatus{Name: k, Value: hc.ParameterStatuses[k]}).Encode(out)
	}
	out, _ = (&pgproto3.BackendKeyData{ProcessID: ss.clientPID, SecretKey: ss.clientSecret[:]}).Encode(out)
	out, _ = (&pgproto3.ReadyForQuery{TxStatus: hc.TxStatus}).Encode(out)
	if _, err := h.conn.Write(out); err != nil {
		s.unregister(ss)
		hc.Conn.Close()
		return nil, false
	}
	_ = h.conn.SetDeadline(time.Time{})
	return ss, true
}

// sendFatal writes prefix bytes (if any) and a FATAL ErrorResponse.
func (s *Server) sendFatal(w net.Conn, m *errorMsg, prefix ...byte) {
	buf, err := m.Encode(prefix)
	if err != nil {
		return
	}
	_ = w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = w.Write(buf)
}

func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// loginRefused reports whether err is the server refusing a login
// (SQLSTATE class 28: invalid authorization, e.g. a wrong password).
func loginRefused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28")
}

// connectBackend opens the backend connection as the target role and
// hijacks it from pgconn once it is ready for queries.
func connectBackend(ctx context.Context, t *WireTarget, clientParams map[string]string) (*pgconn.HijackedConn, error) {
	host, port, err := net.SplitHostPort(t.BackendAddr)
	if err != nil {
		return nil, fmt.Errorf("backend address %q: %w", t.BackendAddr, err)
	}
	sslmode := "prefer"
	if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" || strings.HasPrefix(host, "/") {
		sslmode = "disable"
	}
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host='%s' port=%s sslmode=%s max_protocol_version=3.0",
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(host), port, sslmode))
	if err != nil {
		return nil, fmt.Errorf("backend config: %w", err)
	}
	cfg.User, cfg.Password, cfg.Database = t.PGRole, t.PGPassword, t.PGDatabase
	cfg.RuntimeParams = map[string]string{}
	for k, v := range clientParams {
		switch k {
		case "user", "database", "replication":
		default:
			cfg.RuntimeParams[k] = v
		}
	}
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := checkRoleSettings(ctx, pc); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	if hc.Frontend.ReadBufferLen() != 0 {
		hc.Conn.Close()
		return nil, errors.New("backend sent data after ReadyForQuery during start-up")
	}
	return hc, nil
}

// forwardCancel sends the backend's cancel key for a client cancel request.
func (s *Server) forwardCancel(pid uint32, secret []byte) {
	ss := s.lookupCancel(pid, secret)
	if ss == nil {
		// Perhaps a session of another replica (cancel.go).
		s.relayCancel(pid, secret)
		return
	}
	ss.cancelBackend()
}

// session is one relayed client connection.
type session struct {
	srv           *Server
	admitted      func() // Config.Admit's release, or nil
	client        net.Conn
	backend       net.Conn
	dbName        string
	target        WireTarget // PGPassword cleared
	remote        string
	clientPID     uint32
	clientSecret  [4]byte
	backendPID    uint32
	backendSecret []byte

	// fwdMu is held while client bytes are forwarded; the idle close takes
	// it to make sure nothing is forwarded once it has decided.
	fwdMu   sync.Mutex
	closing bool // under fwdMu

	lastActive atomic.Int64 // unix nanos of the last client traffic or query end
	// txIdleSince is the unix nanos of the last ReadyForQuery that reported
	// a transaction block ('T' or 'E'), or 0 when the last one reported
	// idle ('I') or the client has sent a query since.
	txIdleSince atomic.Int64
	stalls      atomic.Int64 // times the event loop found a socket buffer full and held bytes back
	cancels     atomic.Int32 // CancelRequests sent to the backend (tests)
	inflight    atomic.Int32 // Query/Sync/FunctionCall sent minus ReadyForQuery received

	endOnce sync.Once
	endMsg  atomic.Pointer[errorMsg]
	done    chan struct{}
	idle    *time.Timer

	// rawMu guards raw, set when the event loop relays the session
	// (relay_linux.go).
	rawMu sync.Mutex
	raw   *loopSession
}

func (ss *session) inFlight() int32 { return ss.inflight.Load() }

// run relays until either side ends, then cleans up.
func (ss *session) run() {
	s := ss.srv
	start := time.Now()
	ss.lastActive.Store(start.UnixNano())
	if d := ss.checkPeriod(); d > 0 {
		ss.idle = time.AfterFunc(d, ss.idleCheck)
	}
	if !ss.runRaw() {
		c2bDone := make(chan struct{})
		go func() {
			defer close(c2bDone)
			ss.clientToBackend()
		}()
		ss.backendToClient()
		<-c2bDone
	}
	close(ss.done)
	if ss.idle != nil {
		ss.idle.Stop()
	}
	s.unregister(ss)
	s.release(ss.target.DatabaseID)
	if ss.admitted != nil {
		ss.admitted()
	}
	reason := "closed"
	if m := ss.endMsg.Load(); m != nil {
		reason = m.Code
	}
	s.log.Debug("proxy: session closed", "remote", ss.remote, "database", ss.dbName, "duration", time.Since(start), "reason", reason)
}

// syncTypes are the client messages answered by exactly one ReadyForQuery.
var syncTypes = msgSet('Q', 'S', 'F')

var rfqType = msgSet('Z')

func (ss *session) clientToBackend() {
	defer ss.backend.Close()
	buf := make([]byte, relayBufSize)
	var fs frameScanner
	for {
		n, err := ss.client.Read(buf)
		if n > 0 {
			ss.fwdMu.Lock()
			if ss.closing {
				ss.fwdMu.Unlock()
				return
			}
			ss.srv.bytesToBackend.Add(int64(n))
			ss.lastActive.Store(time.Now().UnixNano())
			if k := fs.count(buf[:n], &syncTypes); k > 0 {
				ss.txIdleSince.Store(0)
				ss.inflight.Add(int32(k))
			}
			werr := ss.writeBackend(buf[:n])
			ss.fwdMu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// backendStallCheck is how long a write to a backend that takes nothing may
// block before the relay checks whether the client is still there.
const backendStallCheck = 5 * time.Second

// writeBackend writes p to the backend. A backend that takes nothing for a
// while (say, a COPY waiting for a lock while its client streams the data)
// is no reason to give up, but a client that reset its connection meanwhile
// is: nobody reads the client then, so the write is done in slices of
// backendStallCheck, checking the client in between. (Not for a TLS
// backend: a TLS write that timed out cannot be resumed.)
func (ss *session) writeBackend(p []byte) error {
	if _, isTLS := ss.backend.(*tls.Conn); isTLS {
		_, err := ss.backend.Write(p)
		return err
	}
	for {
		_ = ss.backend.SetWriteDeadline(time.Now().Add(backendStallCheck))
		n, err := ss.backend.Write(p)
		p = p[n:]
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || pgalive.Gone(ss.client) {
			return err
		}
	}
}

func (ss *session) backendToClient() {
	defer ss.client.Close()
	buf := make([]byte, relayBufSize)
	var fs frameScanner
	for {
		n, err := ss.backend.Read(buf)
		if n > 0 {
			ss.srv.bytesToClient.Add(int64(n))
			k := fs.count(buf[:n], &rfqType)
			if fs.tx != 0 {
				// Before inflight drops: the idle-in-transaction
				// decision must not see an old txIdleSince with no
				// query in flight.
				ss.noteTx(fs.tx, time.Now().UnixNano())
				fs.tx = 0
			}
			if k > 0 {
				ss.lastActive.Store(time.Now().UnixNano())
				for {
					cur := ss.inflight.Load()
					if ss.inflight.CompareAndSwap(cur, max(cur-int32(k), 0)) {
						break
					}
				}
			}
			if _, werr := ss.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			break
		}
	}
	// The backend is gone (or was closed by terminate): tell the client why,
	// if the stream is at a message boundary.
	if m := ss.endMsg.Load(); m != nil && fs.atBoundary() {
		_ = ss.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if b, err := m.Encode(nil); err == nil {
			_, _ = ss.client.Write(b)
		}
	}
}

// terminate ends the session with msg. cancel sends a cancel request for a
// running query first, so that the backend stops working on it.
func (ss *session) terminate(msg *errorMsg, cancel bool) {
	ss.endOnce.Do(func() {
		ss.endMsg.Store(msg)
		// The backend only notices the closed socket when it next reads
		// or writes: cancel whatever it runs so that it stops now. (Not
		// only when a query is known to be in flight: a query forwarded
		// a moment ago may not be counted yet, and a cancel that finds
		// the backend idle is ignored.)
		if cancel {
			go ss.cancelAfterEnd()
		}
		if ss.terminateRaw() {
			return
		}
		// Unblock a relay stuck writing to a client that does not read.
		_ = ss.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		ss.backend.Close()
	})
}

func (ss *session) idleCheck() {
	select {
	case <-ss.done:
		return
	default:
	}
	if ss.idleCheckRaw() {
		return
	}
	if !ss.fwdMu.TryLock() { // bytes are being forwarded right now
		ss.idle.Reset(max(ss.checkPeriod()/10, 10*time.Millisecond))
		return
	}
	m := ss.idleDecision()
	if m == nil {
		ss.fwdMu.Unlock()
		return
	}
	ss.closing = true
	ss.fwdMu.Unlock()
	ss.terminate(m, false)
}

// idleDecision returns the FATAL that ends an idle session, or re-arms the
// idle timer and returns nil. The caller makes sure nothing is forwarded
// concurrently (fwdMu, or the event loop).
func (ss *session) idleDecision() *errorMsg {
	now := time.Now().UnixNano()
	busy := ss.inflight.Load() > 0
	next := time.Duration(1<<63 - 1)
	if timeout := ss.srv.cfg.IdleTimeout; timeout > 0 {
		idleFor := time.Duration(now - ss.lastActive.Load())
		if !busy && idleFor >= timeout {
			ss.srv.log.Debug("proxy: closing idle session", "remote", ss.remote, "database", ss.dbName, "idle", idleFor)
			return fatal("57P05", fmt.Sprintf("terminating connection due to idle timeout (%s); reconnect", timeout))
		}
		next = max(timeout-idleFor, timeout/10)
	}
	if bound := ss.readerTxBound(); bound > 0 {
		if since := ss.txIdleSince.Load(); since != 0 && !busy {
			inTx := time.Duration(now - since)
			if inTx >= bound {
				ss.srv.log.Info("proxy: ending a reader session idle in a transaction", "remote", ss.remote, "database", ss.dbName, "idle_in_transaction", inTx)
				return fatal("25P03", fmt.Sprintf("terminating connection due to idle-in-transaction timeout (%s): a read-only session may not keep a transaction open while idle, because its locks would block the database owner; commit or roll back sooner", bound))
			}
			next = min(next, bound-inTx)
		} else {
			next = min(next, bound/4) // a transaction may start at any time
		}
	}
	ss.idle.Reset(max(next, 10*time.Millisecond))
	return nil
}

// readerTxBound is the idle-in-transaction bound of the session (0: none).
func (ss *session) readerTxBound() time.Duration {
	if !ss.target.Reader {
		return 0
	}
	return max(ss.srv.cfg.ReaderIdleInTransaction, 0)
}

// checkPeriod is the first delay of the session's idle timer (0: the
// session needs none).
func (ss *session) checkPeriod() time.Duration {
	d := max(ss.srv.cfg.IdleTimeout, 0)
	if b := ss.readerTxBound(); b > 0 && (d == 0 || b/4 < d) {
		d = max(b/4, 10*time.Millisecond)
	}
	return d
}

// noteTx records the transaction status of a ReadyForQuery relayed at now.
func (ss *session) noteTx(status byte, now int64) {
	if status == 'I' {
		ss.txIdleSince.Store(0)
	} else {
		ss.txIdleSince.Store(now)
	}
}

// cancelAfterEnd cancels the running query of a session being terminated.
// A cancel that reaches the backend before it has read the query just
// forwarded finds it idle and is discarded, and the backend would then run
// the query to its end before it notices the closed socket; so the cancel
// is repeated, at growing intervals, for about 15 s. Repeats are harmless:
// PostgreSQL ignores a cancel for a backend that has exited (a new backend
// that reuses the PID has another secret key), and nobody else can use this
// backend any more.
func (ss *session) cancelAfterEnd() {
	ss.cancelBackend()
	for _, d := range cancelRepeats {
		select {
		case <-time.After(d):
		case <-ss.srv.stop: // bitd is shutting down
			return
		}
		ss.cancelBackend()
	}
}

var cancelRepeats = []time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second}

// cancelBackend sends a CancelRequest with the backend's real key.
func (ss *session) cancelBackend() {
	d := net.Dialer{Timeout: 5 * time.Second}
	network, addr := backendNetwork(ss.target.BackendAddr)
	c, err := d.Dial(network, addr)
	if err != nil {
		ss.srv.log.Warn("proxy: cancel: connect to backend failed", "database", ss.dbName, "err", err)
		return
	}
	defer c.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: ss.backendPID, SecretKey: ss.backendSecret}).Encode(nil)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(buf); err != nil {
		return
	}
	ss.cancels.Add(1)
	// PostgreSQL closes the connection once it has handled the request.
	_, _ = io.Copy(io.Discard, c)
}

// backendNetwork maps a WireTarget.BackendAddr to a network and address to
// dial: a host that is a directory names PostgreSQL's Unix socket there.
func backendNetwork(addr string) (network, address string) {
	if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasPrefix(host, "/") {
		return "unix", host + "/.s.PGSQL." + port
	}
	return "tcp", addr
}

// msgSet builds a lookup table of message type bytes.
func msgSet(types ...byte) [256]bool {
	var t [256]bool
	for _, b := range types {
		t[b] = true
	}
	return t
}

// frameScanner walks the message boundaries of a protocol-3 byte stream
// (after startup) without copying it: a type byte, a 4-byte length that
// counts itself, then the body.
type frameScanner struct {
	hdr    [5]byte
	nhdr   int
	left   int64 // body bytes still to skip
	broken bool  // a length was invalid: stop tracking
	inZ    bool  // the next body byte is a ReadyForQuery's transaction status
	// tx is the transaction status ('I', 'T' or 'E') of the last
	// ReadyForQuery whose body count has scanned; the caller reads and
	// clears it.
	tx byte
}

// count advances over p and returns how many messages with a type in set
// started in p.
func (f *frameScanner) count(p []byte, set *[256]bool) int {
	if f.broken {
		return 0
	}
	n := 0
	for len(p) > 0 {
		if f.left > 0 {
			if f.inZ {
				f.tx, f.inZ = p[0], false
			}
			k := min(int64(len(p)), f.left)
			f.left -= k
			p = p[k:]
			continue
		}
		if f.nhdr == 0 && len(p) >= 5 {
			copy(f.hdr[:], p[:5])
			p = p[5:]
		} else {
			k := copy(f.hdr[f.nhdr:], p)
			f.nhdr += k
			p = p[k:]
			if f.nhdr < 5 {
				return n
			}
		}
		f.nhdr = 0
		l := int64(uint32(f.hdr[1])<<24 | uint32(f.hdr[2])<<16 | uint32(f.hdr[3])<<8 | uint32(f.hdr[4]))
		if l < 4 || l > 1<<30 {
			f.broken = true
			return n
		}
		if set[f.hdr[0]] {
			n++
		}
		f.inZ = f.hdr[0] == 'Z' && l == 5
		f.left = l - 4
	}
	return n
}

// atBoundary reports whether the stream so far ends at a message boundary.
func (f *frameScanner) atBoundary() bool { return !f.broken && f.nhdr == 0 && f.left == 0 }

// clusterUnavailable reports whether err is a cluster-unavailable error
// (pgaddr.ClusterUnavailableError: its code is cluster_unavailable).
func clusterUnavailable(err error) bool {
	var ce interface{ ErrorCode() string }
	return errors.As(err, &ce) && ce.ErrorCode() == "cluster_unavailable"
}
