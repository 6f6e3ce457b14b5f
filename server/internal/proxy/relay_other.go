//go:build !linux

package proxy

// The event-loop relay exists on Linux only (relay_linux.go); elsewhere
// every session uses the goroutine relay.

type loopSession struct{}

func (ss *session) runRaw() bool       { return false }
func (ss *session) terminateRaw() bool { return false }
func (ss *session) idleCheckRaw() bool { return false }
