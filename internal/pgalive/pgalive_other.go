//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package pgalive

import "net"

// Broken cannot peek at sockets on this platform; connections idle for
// more than a second are still pinged before use.
func Broken(net.Conn) bool { return false }

// Gone cannot peek at sockets on this platform.
func Gone(net.Conn) bool { return false }
