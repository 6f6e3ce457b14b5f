package main

import (
	"context"
	"sync"

	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// cancelRelay carries wire-proxy cancel requests between the replicas that
// share the metadata database: a NOTIFY on store.WireCancelChannel, which
// every replica's proxy LISTENs to (proxy/cancel.go says what the messages
// hold and why they cannot cancel a query without the client's secret).
type cancelRelay struct {
	st     *store.Store
	cancel context.CancelFunc
	done   sync.WaitGroup
}

var _ proxy.CancelRelay = (*cancelRelay)(nil)

func (c *cancelRelay) Publish(ctx context.Context, msg string) error {
	return c.st.PublishWireCancel(ctx, msg)
}

// start listens for the other replicas' messages and hands them to px
// until stop.
func (c *cancelRelay) start(px *proxy.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done.Go(func() {
		c.st.ListenWireCancels(ctx, func(msg string) { px.RelayedCancel(msg) })
	})
}

// stop ends the listener (after the proxy's sessions have ended).
func (c *cancelRelay) stop() {
	if c != nil && c.cancel != nil {
		c.cancel()
		c.done.Wait()
	}
}
