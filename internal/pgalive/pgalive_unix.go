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
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// Control, not Read: Read waits for the socket's read lock, which a
	// read in progress elsewhere (pgconn's background reader can leave one
	// pending on an idle connection) holds until data arrives. The peek is
	// non-blocking, so it needs no lock.
	broken := false
	var buf [1]byte
	_ = rc.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		broken = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK)
	})
	return broken
}
