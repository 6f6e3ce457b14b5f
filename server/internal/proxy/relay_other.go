//go:build !linux

package proxy

import "net"

// The event-loop relay exists on Linux only (relay_linux.go); elsewhere
// every session uses the goroutine relay.

type loopSession struct{}

func (ss *session) runRaw() bool       { return false }
func (ss *session) terminateRaw() bool { return false }
func (ss *session) idleCheckRaw() bool { return false }

func wrapTLS(c net.Conn) net.Conn { return c }
