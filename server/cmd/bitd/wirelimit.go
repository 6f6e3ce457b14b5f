package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access/wireauth"
	"github.com/bitkit-dev/bitkit/server/internal/proxy"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// The wire proxy's failed passwords count in the login limiter's
// per-address bucket (package api, loginlimit.go): the same key, limit and
// window, so that an address has one budget of failures over HTTP logins
// and wire passwords, shared by every replica through the metadata
// database.
const (
	wireFailuresPerAddr = 20          // api.Options.LoginFailuresPerAddr's default
	wireFailureWindow   = time.Minute // api.Options.LoginWindow's default
)

// limitedAuth is the wire proxy's Authorizer with a limit on failed
// passwords per client address. Only failures cost a metadata write: a
// good password is checked as before. An address found over its limit (at
// its next failure, here or through HTTP or another replica) is refused
// at once on this replica, good password or not, until its window ends.
// A password is an API key or token, far beyond guessing; the limit bounds
// the work and the noise a guesser makes. Safe for concurrent use.
type limitedAuth struct {
	*wireauth.Authorizer // StillAuthorized, RepairRole
	st                   *store.Store
	log                  *slog.Logger

	mu      sync.Mutex
	blocked map[string]time.Time // client address → end of the window it is over its limit in
}

// AuthorizeWire refuses an address over its limit with
// proxy.ErrLoginLimited, and otherwise checks the password, counting a
// failure against the client's address.
func (a *limitedAuth) AuthorizeWire(ctx context.Context, password, database string) (*proxy.WireTarget, error) {
	addr := hostOf(proxy.ClientFrom(ctx))
	if addr == "" {
		return a.Authorizer.AuthorizeWire(ctx, password, database)
	}
	if err := a.refuse(addr, a.blockedFor(addr)); err != nil {
		return nil, err
	}
	t, err := a.Authorizer.AuthorizeWire(ctx, password, database)
	if errors.Is(err, proxy.ErrBadPassword) {
		if lerr := a.refuse(addr, a.countFailure(addr)); lerr != nil {
			return nil, lerr
		}
	}
	return t, err
}

// refuse is the client's error for an address limited for wait more; nil
// when wait is 0.
func (a *limitedAuth) refuse(addr string, wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	return fmt.Errorf("%w (%s): try again in %d seconds", proxy.ErrLoginLimited, addr, int((wait+time.Second-1)/time.Second))
}

// blockedFor is how long addr stays refused on this replica (0: not).
func (a *limitedAuth) blockedFor(addr string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.blocked[addr]
	if !ok {
		return 0
	}
	if d := time.Until(until); d > 0 {
		return d
	}
	delete(a.blocked, addr)
	return 0
}

// countFailure counts one failed password of addr in the shared bucket
// and returns how long the address is refused (0 when it is still under
// its limit). A store error counts nothing: it is logged, and the client
// gets its plain password failure.
func (a *limitedAuth) countFailure(addr string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, wait, _, err := a.st.ReserveLogin(ctx, []store.LoginKey{{Key: "a:" + addr, Limit: wireFailuresPerAddr}}, wireFailureWindow)
	if err != nil {
		a.log.Warn("wire proxy: cannot count a failed password against the client's address", "remote", addr, "err", err)
		return 0
	}
	if wait > 0 {
		a.mu.Lock()
		if a.blocked == nil {
			a.blocked = map[string]time.Time{}
		}
		if len(a.blocked) >= 4096 { // a flood of addresses: forget the ended windows
			now := time.Now()
			for k, until := range a.blocked {
				if !until.After(now) {
					delete(a.blocked, k)
				}
			}
		}
		a.blocked[addr] = time.Now().Add(wait)
		a.mu.Unlock()
		return wait
	}
	if res != nil {
		if err := a.st.SettleLogin(ctx, res, store.LoginFailed); err != nil {
			a.log.Warn("wire proxy: cannot settle a failed password; it counts until its window ends", "err", err)
		}
	}
	return 0
}

// hostOf is the address of a client as the login limiter keys it ("" for
// none).
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap().String()
	}
	return ""
}
