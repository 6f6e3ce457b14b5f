//go:build linux

package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"
)

// TLS sessions on the event loop. crypto/tls wants a net.Conn under it; a
// loopConn is that conn. Until the relay starts it passes everything to the
// TCP connection (handshake and startup run as usual). While the loop
// relays the session, its Read hands the tls.Conn the ciphertext the loop
// has read from the socket and then reports errWouldBlock, and its Write
// collects the ciphertext the tls.Conn produces for the loop to send: the
// loop drives the tls.Conn without ever blocking. crypto/tls keeps a
// connection usable after a temporary net.Error from the conn below, which
// is what errWouldBlock is. Once the loop lets go, Write goes to the socket
// descriptor directly (the end message and close_notify).
type loopConn struct {
	net.Conn // the TCP connection, until the loop takes its descriptor

	mode     int
	in       []byte // ciphertext read by the loop, not yet taken by tls
	out      []byte // ciphertext written by tls, not yet taken by the loop
	fd       int    // the loop's descriptor (modes onLoop and detached)
	deadline time.Time
}

// keepTLSOut is the largest ciphertext buffer a session keeps between
// messages.
const keepTLSOut = 16 << 10

const (
	passThrough = iota
	onLoop
	detached
)

// wrapTLS returns the conn to run a TLS server on.
func wrapTLS(c net.Conn) net.Conn {
	if _, ok := c.(*net.TCPConn); !ok {
		return c
	}
	return &loopConn{Conn: c}
}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "no data buffered (event-loop relay)" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.mode == passThrough {
		return c.Conn.Read(p)
	}
	if len(c.in) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	if len(c.in) == 0 {
		c.in = c.in[:0:0]
	}
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error) {
	switch c.mode {
	case passThrough:
		return c.Conn.Write(p)
	case onLoop:
		c.out = append(c.out, p...)
		return len(p), nil
	}
	if len(c.out) > 0 {
		writeAllFD(c.fd, c.out, c.deadline)
		c.out = nil
	}
	writeAllFD(c.fd, p, c.deadline)
	return len(p), nil
}

// Close closes the TCP connection before the loop takes it; afterwards the
// relay closes the descriptor.
func (c *loopConn) Close() error {
	if c.mode == passThrough {
		return c.Conn.Close()
	}
	return nil
}

func (c *loopConn) SetDeadline(t time.Time) error {
	if c.mode == passThrough {
		return c.Conn.SetDeadline(t)
	}
	c.deadline = t
	return nil
}

func (c *loopConn) SetReadDeadline(t time.Time) error {
	if c.mode == passThrough {
		return c.Conn.SetReadDeadline(t)
	}
	return nil
}

func (c *loopConn) SetWriteDeadline(t time.Time) error {
	if c.mode == passThrough {
		return c.Conn.SetWriteDeadline(t)
	}
	c.deadline = t
	return nil
}

// take returns the ciphertext written so far and empties the buffer. The
// result stays valid until the next Write: the caller sends it or copies it
// first. A large buffer is not kept for as long as the session lives (one
// allocation per 64 KiB relayed is noise next to the encryption).
func (c *loopConn) take() []byte {
	out := c.out
	if cap(out) > keepTLSOut {
		c.out = nil
	} else {
		c.out = out[:0]
	}
	return out
}

// SyscallConn lets pgalive look at the socket while the goroutine relay
// runs the session.
func (c *loopConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok && c.mode == passThrough {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// tlsLoopConn returns the loopConn under a TLS client connection, or nil.
func tlsLoopConn(c net.Conn) (*tls.Conn, *loopConn) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	lc, ok := tc.NetConn().(*loopConn)
	if !ok {
		return nil, nil
	}
	return tc, lc
}
