//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package pgdirect

import "net"

// connBroken cannot peek at sockets on this platform; connections idle for
// more than a second are still pinged before use.
func connBroken(net.Conn) bool { return false }
