package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cancel requests across replicas.
//
// A client sends its CancelRequest (the pid and secret of the
// BackendKeyData it got at start-up) on a new connection, which a load
// balancer may route to any replica. A replica that holds no session with
// that pid hands the request to the others through Config.CancelRelay
// (bitd: a NOTIFY on the metadata database, which every replica LISTENs
// to) as a relay message:
//
//	c1 <origin> <pid> <mac>
//
// origin is the sending Server's random id (it ignores its own messages),
// pid the client-facing pid in decimal, and mac the first 16 bytes of
// HMAC-SHA256(CancelKey, "bitkit-wire-cancel-v1" ‖ pid ‖ secret), in
// unpadded base64url, CancelKey being derived from the server secret the
// replicas share (DeriveCancelKey). The replica holding a session with
// that pid computes the mac of its session's own client secret and sends
// the backend's real cancel key to PostgreSQL only when the two match.
// So the message never carries the client secret, nothing is stored, and
// a cancel still needs the client's secret: it is as hard to cancel
// another tenant's query through another replica as through the one that
// holds it.
//
// Relaying is capped at relayRate messages per second per replica (a
// flood of made-up keys costs the metadata database no more than that);
// cancels past the cap are dropped, as PostgreSQL drops cancels it cannot
// match.

// CancelRelay carries relay messages to every other replica.
type CancelRelay interface {
	// Publish delivers msg to the RelayedCancel of every replica's Server
	// (possibly this one's too).
	Publish(ctx context.Context, msg string) error
}

const (
	relayVersion = "c1"
	relayRate    = 100 // relay messages per second and replica
	relayTimeout = 5 * time.Second
)

// DeriveCancelKey derives the key of relay messages from the server
// secret every replica shares.
func DeriveCancelKey(serverSecret []byte) []byte {
	m := hmac.New(sha256.New, serverSecret)
	m.Write([]byte("bitkit-wire-cancel-key-v1"))
	return m.Sum(nil)
}

func cancelMAC(key []byte, pid uint32, secret []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("bitkit-wire-cancel-v1"))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], pid)
	m.Write(b[:])
	m.Write(secret)
	return m.Sum(nil)[:16]
}

// relayState is a Server's cancel relay: its origin id and rate cap.
type relayState struct {
	origin string
	mu     sync.Mutex
	second int64 // unix second of n
	n      int
}

func newRelayState() *relayState {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &relayState{origin: hex.EncodeToString(b[:])}
}

// allow counts one relay message against the per-second cap.
func (r *relayState) allow(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := now.Unix(); s != r.second {
		r.second, r.n = s, 0
	}
	if r.n >= relayRate {
		return false
	}
	r.n++
	return true
}

// relayCancel hands a cancel request for a session this server does not
// hold to the other replicas.
func (s *Server) relayCancel(pid uint32, secret []byte) {
	if s.cfg.CancelRelay == nil || len(s.cfg.CancelKey) == 0 {
		s.log.Debug("proxy: cancel request with an unknown key")
		return
	}
	if !s.relay.allow(time.Now()) {
		s.log.Debug("proxy: cancel request with an unknown key not relayed: too many cancel requests to relay this second")
		return
	}
	msg := relayVersion + " " + s.relay.origin + " " + strconv.FormatUint(uint64(pid), 10) + " " +
		base64.RawURLEncoding.EncodeToString(cancelMAC(s.cfg.CancelKey, pid, secret))
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	defer cancel()
	if err := s.cfg.CancelRelay.Publish(ctx, msg); err != nil {
		s.log.Warn("proxy: cannot hand a cancel request to the other replicas; the query it names keeps running", "err", err)
		return
	}
	s.relayed.Add(1)
}

// RelayedCancel handles a relay message from a replica (CancelRelay): when
// it names a session of this server with the right client secret, the
// session's query is cancelled. It reports whether it was. Messages this
// server sent, malformed ones and wrong keys are ignored.
func (s *Server) RelayedCancel(msg string) bool {
	f := strings.Fields(msg)
	if len(f) != 4 || f[0] != relayVersion || f[1] == s.relay.origin || len(s.cfg.CancelKey) == 0 {
		return false
	}
	pid, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(f[3])
	if err != nil || len(got) != 16 {
		return false
	}
	s.mu.Lock()
	ss := s.byPID[uint32(pid)]
	s.mu.Unlock()
	if ss == nil || !hmac.Equal(got, cancelMAC(s.cfg.CancelKey, ss.clientPID, ss.clientSecret[:])) {
		return false
	}
	s.relayedIn.Add(1)
	go ss.cancelBackend()
	return true
}
