package store

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// WireCancelChannel is the NOTIFY channel on which a replica hands a
// wire-proxy cancel request it holds no session for to the other replicas
// (package proxy, cancel.go, describes the payload: it never carries a
// client's secret).
const WireCancelChannel = "bitkit_wire_cancel"

// WireCancelListenerName is the application_name of a replica's LISTEN
// connection on WireCancelChannel, followed by a space and the bitd
// process id.
const WireCancelListenerName = "bitd cancel listener"

// PublishWireCancel sends msg to every replica listening on
// WireCancelChannel.
func (s *Store) PublishWireCancel(ctx context.Context, msg string) error {
	_, err := s.DB.Exec(ctx, "SELECT pg_notify($1, $2)", WireCancelChannel, msg)
	return err
}

// ListenWireCancels calls f with every payload sent on WireCancelChannel
// (by any replica, this one included) until ctx ends, on a connection of
// its own that it re-opens when it fails (retrying with a capped backoff
// and logging through the store's logger). Messages sent while it is
// reconnecting are lost: their cancel requests do nothing, as a cancel
// that reaches PostgreSQL too late does.
func (s *Store) ListenWireCancels(ctx context.Context, f func(payload string)) {
	cfg := s.adminCfg.ConnConfig.Copy()
	cfg.Database = s.metaName
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = WireCancelListenerName + " " + strconv.Itoa(os.Getpid())
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		listened, err := listenOnce(ctx, cfg, f)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = 50 * time.Millisecond
		}
		s.log.Warn("the wire-proxy cancel listener lost its connection; cancel requests relayed by other replicas are missed until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func listenOnce(ctx context.Context, cfg *pgx.ConnConfig, f func(string)) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+WireCancelChannel); err != nil {
		return false, err
	}
	for {
		// Wake up now and then to check that the connection still works.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			f(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = conn.Exec(cctx, "SELECT 1")
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}
