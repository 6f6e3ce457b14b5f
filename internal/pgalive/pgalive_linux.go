package pgalive

import (
	"syscall"
	"unsafe"
)

// tcpClose is TCP_CLOSE among the kernel's TCP states
// (include/net/tcp_states.h): the state a socket is in after a reset.
const tcpClose = 7

// tcpClosed reports whether the TCP socket fd is in state CLOSE.
func tcpClosed(fd int) bool {
	var ti syscall.TCPInfo
	n := uint32(unsafe.Sizeof(ti))
	_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&ti)), uintptr(unsafe.Pointer(&n)), 0)
	return e == 0 && ti.State == tcpClose
}
