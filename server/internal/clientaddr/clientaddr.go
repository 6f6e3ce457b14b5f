// Package clientaddr finds the address of the client behind a connection
// or request when bitd runs behind load balancers: over HTTP from the
// X-Forwarded-For or Forwarded header, on the wire proxy from a PROXY
// protocol header (proxyproto.go). Both are believed only from the peers
// of a Trusted set (bitd's --trusted-proxies); from anyone else they are
// ignored (HTTP) or refused (wire), so a client cannot choose its own
// address.
//
// The address found is what bitd keys per client address (the login
// limiter, the buffer budget of anonymous public readers) and what its
// logs show.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Trusted is a set of proxy addresses (--trusted-proxies). The zero value
// and nil trust nobody. A Trusted is read-only after ParseTrusted and safe
// for concurrent use.
type Trusted struct {
	prefixes []netip.Prefix
}

// ParseTrusted parses a comma-separated list of addresses and CIDR ranges
// ("10.0.0.0/8, 192.0.2.7, ::1"); an empty string trusts nobody. IPv4
// addresses written as IPv4-mapped IPv6 are taken as IPv4.
func ParseTrusted(s string) (*Trusted, error) {
	t := &Trusted{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR range (e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)", f)
			}
			if p.Addr().Zone() != "" {
				return nil, fmt.Errorf("%q: write the range without a zone", f)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			p = p.Masked()
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an address or CIDR range (e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)", f)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

// Empty reports whether t trusts nobody.
func (t *Trusted) Empty() bool { return t == nil || len(t.prefixes) == 0 }

// String lists the trusted ranges, comma-separated.
func (t *Trusted) String() string {
	if t == nil {
		return ""
	}
	s := make([]string, len(t.prefixes))
	for i, p := range t.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Contains reports whether a is a trusted proxy address.
func (t *Trusted) Contains(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses a net.Addr's or http.Request.RemoteAddr's host.
func peerAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// FromRequest returns the address of the client of r: the TCP peer's
// (r.RemoteAddr), unless the peer is trusted, in which case it is the
// right-most address of X-Forwarded-For (when the request has one, else
// of the for= parameters of Forwarded) that is not itself a trusted
// proxy. Each proxy appends the address it received the request from, so
// the right-most entries were written by trusted proxies and everything
// left of the first untrusted one was written by the client (or by
// proxies the client chose) and may be forged. An entry that is not an
// address (garbage, "unknown", an obfuscated name) ends the walk: the
// client is then the last address known, the proxy that wrote the entry.
// The second result reports whether the address came from a header.
func (t *Trusted) FromRequest(r *http.Request) (netip.Addr, bool) {
	peer := peerAddr(r.RemoteAddr)
	if !t.Contains(peer) {
		return peer, false
	}
	var hops []string
	if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
		for _, v := range vs {
			hops = append(hops, strings.Split(v, ",")...)
		}
	} else {
		for _, v := range r.Header.Values("Forwarded") {
			hops = append(hops, forwardedFor(v)...)
		}
	}
	cur := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		cur = a
		if !t.Contains(a) {
			break
		}
	}
	return cur, cur != peer
}

// parseHop parses one X-Forwarded-For entry or Forwarded for= value: an
// address, optionally with a port ("192.0.2.1:4711", "[2001:db8::1]:4711")
// or in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Addr().Zone() == ""
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// forwardedFor returns the for= values of a Forwarded header value
// (RFC 7239), in order, unquoted. An element without for= yields "" (not
// an address), so that it ends the walk of FromRequest.
func forwardedFor(v string) []string {
	var out []string
	for _, elem := range splitQuoted(v, ',') {
		if strings.TrimSpace(elem) == "" {
			continue
		}
		val := ""
		for _, pair := range splitQuoted(elem, ';') {
			k, x, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
				val = strings.TrimSpace(x)
				if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
					val = strings.ReplaceAll(val[1:len(val)-1], `\`, "")
				}
				break
			}
		}
		out = append(out, val)
	}
	return out
}

// splitQuoted splits s at sep outside double-quoted strings.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Middleware sets the RemoteAddr of each request to FromRequest's address
// (the bare address, without a port) when it came from a header, so that
// everything below it — the login limiter, the buffer budget, the access
// log — sees the client rather than the balancer. With an empty t it
// returns next itself.
func (t *Trusted) Middleware(next http.Handler) http.Handler {
	if t.Empty() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, forwarded := t.FromRequest(r); forwarded {
			r = r.WithContext(r.Context()) // a shallow copy: the caller's request stays as it was
			r.RemoteAddr = a.String()
		}
		next.ServeHTTP(w, r)
	})
}

// Host returns the address part of an http.Request.RemoteAddr ("ip:port",
// or the bare address Middleware sets), IPv4-mapped IPv6 addresses written
// as IPv4, as the per-address limits key it; a string that is no address
// is returned as it is.
func Host(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
}
