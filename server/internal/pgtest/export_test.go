package pgtest

import "context"

// Kill releases c's connections without dropping anything, as if its
// process had ended without Close.
func (c *Cluster) Kill() {
	c.Store.Close()
	c.lock.Close(context.Background())
}

// CloseShared runs the Shared fixtures' cleanups, as Teardown does first.
func CloseShared() { closeShared() }
