package clientaddr

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func mustTrusted(t *testing.T, s string) *Trusted {
	t.Helper()
	tr, err := ParseTrusted(s)
	if err != nil {
		t.Fatalf("ParseTrusted(%q): %v", s, err)
	}
	return tr
}

func TestParseTrusted(t *testing.T) {
	t.Parallel()
	tr := mustTrusted(t, " 10.0.0.0/8, 192.0.2.7,fd00::/8 ,::ffff:198.51.100.0/120,, ")
	if got, want := tr.String(), "10.0.0.0/8,192.0.2.7/32,fd00::/8,198.51.100.0/24"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"::ffff:10.9.9.9", true}, // IPv4-mapped: the IPv4 address
		{"fd12::1", true},
		{"fe80::1", false},
		{"198.51.100.200", true},
		{"198.51.101.1", false},
	} {
		if got := tr.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if tr.Contains(netip.Addr{}) {
		t.Error("the invalid address is trusted")
	}
	for _, s := range []string{"", " , "} {
		if e := mustTrusted(t, s); !e.Empty() || e.Contains(netip.MustParseAddr("127.0.0.1")) {
			t.Errorf("ParseTrusted(%q) trusts someone", s)
		}
	}
	var nilT *Trusted
	if !nilT.Empty() || nilT.Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a nil Trusted trusts someone")
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1:80", "fe80::1%eth0", "10.0.0.0/8,nope"} {
		if _, err := ParseTrusted(bad); err == nil {
			t.Errorf("ParseTrusted(%q) accepted it", bad)
		}
	}
}

func TestFromRequest(t *testing.T) {
	t.Parallel()
	tr := mustTrusted(t, "10.0.0.0/8,fd00::/8")
	for _, tc := range []struct {
		name      string
		peer      string
		xff       []string
		forwarded []string
		want      string
		fromHdr   bool
	}{
		{name: "untrusted peer: headers ignored", peer: "203.0.113.5:4000", xff: []string{"198.51.100.1"},
			forwarded: []string{"for=198.51.100.2"}, want: "203.0.113.5"},
		{name: "trusted peer without headers", peer: "10.0.0.1:4000", want: "10.0.0.1"},
		{name: "one hop", peer: "10.0.0.1:4000", xff: []string{"198.51.100.1"}, want: "198.51.100.1", fromHdr: true},
		{name: "client-sent entries left of the proxy's are not believed", peer: "10.0.0.1:4000",
			xff: []string{"6.6.6.6, 198.51.100.1"}, want: "198.51.100.1", fromHdr: true},
		{name: "a chain of trusted proxies is skipped", peer: "10.0.0.1:4000",
			xff: []string{"6.6.6.6, 198.51.100.1, 10.0.0.2", "10.0.0.3"}, want: "198.51.100.1", fromHdr: true},
		{name: "all hops trusted: the left-most", peer: "10.0.0.1:4000", xff: []string{"10.0.0.9,10.0.0.8"},
			want: "10.0.0.9", fromHdr: true},
		{name: "garbage on the right: the proxy itself", peer: "10.0.0.1:4000", xff: []string{"198.51.100.1, nonsense"},
			want: "10.0.0.1"},
		{name: "garbage behind a trusted hop: that hop", peer: "10.0.0.1:4000", xff: []string{"junk, 10.0.0.7"},
			want: "10.0.0.7", fromHdr: true},
		{name: "empty entry", peer: "10.0.0.1:4000", xff: []string{"198.51.100.1,"}, want: "10.0.0.1"},
		{name: "zoned entry with a port", peer: "10.0.0.1:4000", xff: []string{"[fe80::1%eth0]:80"}, want: "10.0.0.1"},
		{name: "entry with a port", peer: "10.0.0.1:4000", xff: []string{"198.51.100.1:5555"}, want: "198.51.100.1", fromHdr: true},
		{name: "IPv6 entry", peer: "[fd00::1]:4000", xff: []string{"2001:db8::1"}, want: "2001:db8::1", fromHdr: true},
		{name: "bracketed IPv6 with port", peer: "[fd00::1]:4000", xff: []string{"[2001:db8::2]:80"}, want: "2001:db8::2", fromHdr: true},
		{name: "IPv4-mapped peer is trusted", peer: "[::ffff:10.0.0.1]:4000", xff: []string{"198.51.100.3"}, want: "198.51.100.3", fromHdr: true},
		{name: "Forwarded", peer: "10.0.0.1:4000", forwarded: []string{`for=6.6.6.6, for=198.51.100.4;proto=https;by=10.0.0.1`},
			want: "198.51.100.4", fromHdr: true},
		{name: "Forwarded quoted IPv6 with port", peer: "10.0.0.1:4000", forwarded: []string{`For="[2001:db8:cafe::17]:4711"`},
			want: "2001:db8:cafe::17", fromHdr: true},
		{name: "Forwarded over several headers", peer: "10.0.0.1:4000", forwarded: []string{`for=198.51.100.5`, `for=10.0.0.4`},
			want: "198.51.100.5", fromHdr: true},
		{name: "Forwarded unknown", peer: "10.0.0.1:4000", forwarded: []string{`for=198.51.100.5, for=unknown`}, want: "10.0.0.1"},
		{name: "Forwarded element without for", peer: "10.0.0.1:4000", forwarded: []string{`for=198.51.100.5, proto=http`}, want: "10.0.0.1"},
		{name: "Forwarded comma inside quotes", peer: "10.0.0.1:4000", forwarded: []string{`for=198.51.100.6;x="a,b"`},
			want: "198.51.100.6", fromHdr: true},
		{name: "X-Forwarded-For wins over Forwarded", peer: "10.0.0.1:4000", xff: []string{"198.51.100.7"},
			forwarded: []string{"for=198.51.100.8"}, want: "198.51.100.7", fromHdr: true},
		{name: "bare RemoteAddr", peer: "10.0.0.1", xff: []string{"198.51.100.9"}, want: "198.51.100.9", fromHdr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.forwarded {
				r.Header.Add("Forwarded", v)
			}
			got, fromHdr := tr.FromRequest(r)
			if got.String() != tc.want || fromHdr != tc.fromHdr {
				t.Errorf("FromRequest = %s, %v; want %s, %v", got, fromHdr, tc.want, tc.fromHdr)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	var seen string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr })
	for _, tc := range []struct {
		trusted, peer, xff, want string
	}{
		{"127.0.0.1", "127.0.0.1:5000", "127.0.0.2", "127.0.0.2"},
		{"127.0.0.1", "127.0.0.9:5000", "127.0.0.2", "127.0.0.9:5000"}, // spoofed: ignored
		{"", "127.0.0.1:5000", "127.0.0.2", "127.0.0.1:5000"},          // nobody trusted
		{"127.0.0.1", "127.0.0.1:5000", "", "127.0.0.1:5000"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		mustTrusted(t, tc.trusted).Middleware(h).ServeHTTP(httptest.NewRecorder(), r)
		if seen != tc.want {
			t.Errorf("trusted %q, peer %s, X-Forwarded-For %q: handler saw %q, want %q", tc.trusted, tc.peer, tc.xff, seen, tc.want)
		}
		if r.RemoteAddr != tc.peer {
			t.Errorf("the caller's request was changed: RemoteAddr %q", r.RemoteAddr)
		}
		if got, want := Host(seen), netip.MustParseAddrPort(mustPort(tc.want)).Addr().String(); got != want {
			t.Errorf("Host(%q) = %q, want %q", seen, got, want)
		}
	}
}

func TestHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1:80":          "192.0.2.1",
		"192.0.2.1":             "192.0.2.1",
		"[2001:db8::1]:80":      "2001:db8::1",
		"2001:db8::1":           "2001:db8::1",
		"[::ffff:192.0.2.1]:80": "192.0.2.1",
		"pipe":                  "pipe",
		"[fe80::1%eth0]:80":     "fe80::1%eth0",
	} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustPort(s string) string {
	if _, err := netip.ParseAddr(s); err == nil {
		return s + ":0"
	}
	return s
}

// FuzzFromRequest feeds arbitrary X-Forwarded-For and Forwarded values
// from a trusted and an untrusted peer: no panic, the untrusted peer is
// always itself, and a trusted peer's answer is itself or an address
// written in the headers.
func FuzzFromRequest(f *testing.F) {
	f.Add("198.51.100.1, 10.0.0.2", "")
	f.Add("", `for="[2001:db8::1]:80";proto=https, for=10.0.0.3`)
	f.Add("junk,,  , 10.0.0.9", `for="a,b;c"`)
	f.Add("[::ffff:192.0.2.1]:8080", `for=unknown`)
	tr := &Trusted{prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		for _, peer := range []string{"10.0.0.1:1", "203.0.113.1:1"} {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = peer
			if xff != "" {
				r.Header.Set("X-Forwarded-For", xff)
			}
			if fwd != "" {
				r.Header.Set("Forwarded", fwd)
			}
			got, fromHdr := tr.FromRequest(r)
			p := netip.MustParseAddrPort(peer).Addr()
			if !tr.Contains(p) {
				if got != p || fromHdr {
					t.Fatalf("untrusted peer %s became %s", p, got)
				}
				continue
			}
			if !got.IsValid() || got.Is4In6() || got.Zone() != "" {
				t.Fatalf("FromRequest = %v: not a plain address", got)
			}
			if fromHdr != (got != p) {
				t.Fatalf("FromRequest = %v, %v for peer %s", got, fromHdr, p)
			}
		}
	})
}
