package pgpool

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// copyGuard watches the backend's message stream of a pool connection. A
// user's COPY … FROM STDIN makes the server wait for data that an HTTP query
// never sends (pgconn's Exec does not speak the copy sub-protocol), which
// would hold the connection until the statement timeout. While the guard is
// armed (RefuseCopyIn), a server announcing copy-in (or copy-both) mode makes
// it close the connection at once: the backend aborts the statement and its
// transaction, the query fails, and the pool destroys the connection.
// CopyInRefused reports it, so the handler can answer a clear error. Unarmed
// (the default), COPY FROM STDIN works as usual (import jobs use it).
//
// The guard only reads message headers (type byte and length) and skips the
// bodies, so its cost is a few instructions per message.
type copyGuard struct {
	net.Conn
	hdr     [5]byte
	hdrN    int
	skip    int
	armed   atomic.Bool
	refused atomic.Bool
	// ready turns true at the first ReadyForQuery; an ErrorResponse
	// before it (a failed start-up: bad password, …) calls onStartupError.
	ready          bool
	onStartupError func()
	// The pipelined session reset (reset.go), used by one goroutine at a
	// time (the connection's holder, then the pool's release): queueReset
	// makes the next Write carry DISCARD ALL behind the caller's bytes,
	// resetSent records that it did, clean that its answer was read.
	queueReset bool
	resetSent  bool
	clean      bool
	wbuf       []byte
	signals    *TestSignals // nil but in tests
}

// errUnreadReset refuses a message sent while a reset's answer is unread.
var errUnreadReset = errors.New("pgpool: statement sent before the session reset's answer was read (FinishReset); the connection was closed")

// Write sends p, followed by DISCARD ALL when a reset is queued. A write
// while a reset's answer is unread would leave that answer to be read as
// this message's: the connection is closed instead.
func (g *copyGuard) Write(p []byte) (int, error) {
	if g.signals != nil {
		g.signals.Writes.Add(1)
	}
	if g.resetSent {
		_ = g.Conn.Close()
		return 0, errUnreadReset
	}
	if !g.queueReset {
		return g.Conn.Write(p)
	}
	g.queueReset = false
	g.wbuf = append(append(g.wbuf[:0], p...), discardAllMsg...)
	n, err := g.Conn.Write(g.wbuf)
	if n == len(g.wbuf) {
		g.resetSent = true
	}
	if len(g.wbuf) > 64<<10 {
		g.wbuf = nil // don't keep a large statement's copy
	}
	return min(n, len(p)), err
}

func (g *copyGuard) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	g.scan(p[:n])
	return n, err
}

func (g *copyGuard) scan(b []byte) {
	for len(b) > 0 {
		if g.skip > 0 {
			k := min(g.skip, len(b))
			g.skip -= k
			b = b[k:]
			continue
		}
		k := copy(g.hdr[g.hdrN:], b)
		g.hdrN += k
		b = b[k:]
		if g.hdrN < len(g.hdr) {
			return
		}
		g.hdrN = 0
		if !g.ready {
			switch g.hdr[0] {
			case 'Z':
				g.ready = true
			case 'E':
				if g.onStartupError != nil {
					g.onStartupError()
				}
			}
		}
		if t := g.hdr[0]; (t == 'G' || t == 'W') && g.armed.Load() {
			g.refused.Store(true)
			_ = g.Conn.Close()
			return
		}
		g.skip = int(binary.BigEndian.Uint32(g.hdr[1:])) - 4
		if g.skip < 0 {
			g.skip = 0
		}
	}
}

// RefuseCopyIn arms (on) or disarms the COPY FROM STDIN guard of a
// connection from a Manager's pool; other connections are left alone.
func RefuseCopyIn(pc *pgconn.PgConn, on bool) {
	if g, ok := pc.Conn().(*copyGuard); ok {
		g.armed.Store(on)
	}
}

// CopyInRefused reports whether pc was closed because the server asked it
// for COPY … FROM STDIN data.
func CopyInRefused(pc *pgconn.PgConn) bool {
	g, ok := pc.Conn().(*copyGuard)
	return ok && g.refused.Load()
}
