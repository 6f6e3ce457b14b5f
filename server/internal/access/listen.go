package access

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5"
)

// ListenerApplicationName is the application_name of the connection on
// which a replica LISTENs for access changes, followed by a space and the
// bitd process id (operators and tests find it in pg_stat_activity).
const ListenerApplicationName = "bitd access listener"

// Listener timings: how long the connection may stay silent before the
// listener checks it with a query, how long that check may take, and the
// longest wait between reconnection attempts.
const (
	listenIdleCheck  = 5 * time.Second
	listenCheckLimit = 5 * time.Second
	listenMaxBackoff = 5 * time.Second
)

// allTag drops every entry (store.AllTag).
const allTag = store.AllTag

// listen keeps a LISTEN on store.AccessChannel until ctx ends. While it is
// not listening the cache is off; after each (re)connection it flushes the
// cache and turns it on.
func (a *Access) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer close(a.listenDone)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		listened, err := a.listenOnce(ctx, cfg)
		a.cache.setLive(false)
		if listened {
			backoff = 50 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("the access-change listener lost its connection; serving lookups from the metadata database until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listenOnce connects, LISTENs, turns the cache on and applies
// notifications until the connection fails; listened says it got as far
// as the LISTEN.
func (a *Access) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+store.AccessChannel); err != nil {
		return false, err
	}
	// Everything committed before the LISTEN is read fresh from now on;
	// everything after it arrives as a notification.
	a.cache.setLive(true)
	for {
		wctx, cancel := context.WithTimeout(ctx, a.test.idleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			tags := strings.Fields(n.Payload)
			a.cache.invalidate(tags)
			for _, f := range a.notified {
				f(tags)
			}
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet: make sure the connection still works, so a
			// silently broken one turns the cache off.
			cctx, cancel := context.WithTimeout(ctx, listenCheckLimit)
			_, err = conn.Exec(cctx, "SELECT 1")
			cancel()
			if err != nil {
				return true, err
			}
			a.test.checks.Add(1)
		default:
			return true, err
		}
	}
}

// listenerConfig is the metadata database connection of the listener.
func listenerConfig(st *store.Store) *pgx.ConnConfig {
	cfg := st.AdminConfig().ConnConfig.Copy()
	cfg.Database = st.MetadataDB()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = ListenerApplicationName + " " + strconv.Itoa(os.Getpid())
	return cfg
}
