//go:build linux || darwin || freebsd || netbsd || openbsd

package pgalive

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// Broken reports, without consuming anything, whether an idle
// connection's socket has unread data or is closed: an idle pgx connection
// has nothing to read unless the server sent a FATAL message (idle close,
// shutdown) or closed it, or sent a notification. Either way the pool pings
// it before use, which consumes a notification normally.
func Broken(nc net.Conn) bool {
	broken := false
	control(nc, func(fd int) {
		var buf [1]byte
		_, _, err := syscall.Recvfrom(fd, buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		broken = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK)
	})
	return broken
}

// Gone reports, without consuming anything, whether nc's peer reset the
// connection or closed it with nothing left to read. Unlike Broken, unread
// data alone is no sign of death: bitd's proxy asks it about a client whose
// data it has not read yet. (A reset socket may still hold readable data,
// so on Linux its TCP state is checked first.)
func Gone(nc net.Conn) bool {
	gone := false
	control(nc, func(fd int) {
		if tcpClosed(fd) {
			gone = true
			return
		}
		var buf [1]byte
		n, _, err := syscall.Recvfrom(fd, buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || (err != nil && !errors.Is(err, syscall.EAGAIN) &&
			!errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR))
	})
	return gone
}

// control runs f with the descriptor of nc's socket (of the connection
// under a TLS one). Control, not Read: Read waits for the socket's read
// lock, which a read in progress elsewhere (pgconn's background reader can
// leave one pending on an idle connection) holds until data arrives. The
// peeks above are non-blocking, so they need no lock.
func control(nc net.Conn, f func(fd int)) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { f(int(fd)) })
}
