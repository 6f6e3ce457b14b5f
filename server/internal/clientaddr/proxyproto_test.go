package clientaddr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// v2Header builds a version 2 header: command (0 LOCAL, 1 PROXY), family
// byte, the source and destination, and tlv bytes appended.
func v2Header(cmd, fam byte, src, dst netip.AddrPort, tlv []byte) []byte {
	var body []byte
	switch fam >> 4 {
	case 1:
		body = append(append(body, src.Addr().AsSlice()...), dst.Addr().AsSlice()...)
	case 2:
		s, d := src.Addr().As16(), dst.Addr().As16()
		body = append(append(body, s[:]...), d[:]...)
	case 3:
		body = make([]byte, 216)
	}
	if fam>>4 == 1 || fam>>4 == 2 {
		body = binary.BigEndian.AppendUint16(body, src.Port())
		body = binary.BigEndian.AppendUint16(body, dst.Port())
	}
	body = append(body, tlv...)
	h := append([]byte{}, v2Sig...)
	h = append(h, 0x20|cmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return append(h, body...)
}

var (
	src4 = netip.MustParseAddrPort("192.0.2.1:51234")
	dst4 = netip.MustParseAddrPort("192.0.2.9:5432")
	src6 = netip.MustParseAddrPort("[2001:db8::1]:51234")
	dst6 = netip.MustParseAddrPort("[2001:db8::9]:5432")
)

func TestReadHeader(t *testing.T) {
	t.Parallel()
	// What follows the header: it must be left unread.
	const after = "\x00\x00\x00\x08\x04\xd2\x16\x2f" // an SSLRequest
	for _, tc := range []struct {
		name   string
		header []byte
		want   string // "" with ok false
		err    string // a substring of the error
		cut    bool   // the connection ends after header
	}{
		{name: "v1 TCP4", header: []byte("PROXY TCP4 192.0.2.1 192.0.2.9 51234 5432\r\n"), want: "192.0.2.1:51234"},
		{name: "v1 TCP6", header: []byte("PROXY TCP6 2001:db8::1 2001:db8::9 51234 5432\r\n"), want: "[2001:db8::1]:51234"},
		{name: "v1 UNKNOWN", header: []byte("PROXY UNKNOWN\r\n")},
		{name: "v1 UNKNOWN with addresses", header: []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")},
		{name: "v1 longest", header: []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			want: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
		{name: "v1 too long", header: []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535 " + strings.Repeat("x", 200) + "\r\n"),
			err: "longer than 107"},
		{name: "v1 TCP4 with IPv6", header: []byte("PROXY TCP4 2001:db8::1 192.0.2.9 1 2\r\n"), err: "address"},
		{name: "v1 TCP6 with IPv4", header: []byte("PROXY TCP6 192.0.2.1 192.0.2.9 1 2\r\n"), err: "address"},
		{name: "v1 bad port", header: []byte("PROXY TCP4 192.0.2.1 192.0.2.9 65536 2\r\n"), err: "port"},
		{name: "v1 leading zero", header: []byte("PROXY TCP4 192.0.2.1 192.0.2.9 080 2\r\n"), err: "port"},
		{name: "v1 double space", header: []byte("PROXY TCP4  192.0.2.1 192.0.2.9 1 2\r\n"), err: "fields"},
		{name: "v1 no CR", header: []byte("PROXY TCP4 192.0.2.1 192.0.2.9 1 2\n"), err: "CRLF"},
		{name: "v1 UDP", header: []byte("PROXY UDP4 192.0.2.1 192.0.2.9 1 2\r\n"), err: "protocol"},
		{name: "v2 TCP4", header: v2Header(1, 0x11, src4, dst4, nil), want: "192.0.2.1:51234"},
		{name: "v2 TCP6", header: v2Header(1, 0x21, src6, dst6, nil), want: "[2001:db8::1]:51234"},
		{name: "v2 TCP4 with TLVs", header: v2Header(1, 0x11, src4, dst4, []byte{0x04, 0x00, 0x03, 'a', 'b', 'c'}), want: "192.0.2.1:51234"},
		{name: "v2 IPv4-mapped in TCP6", header: v2Header(1, 0x21, netip.MustParseAddrPort("[::ffff:192.0.2.3]:7"), dst6, nil), want: "192.0.2.3:7"},
		{name: "v2 LOCAL", header: v2Header(0, 0x00, src4, dst4, nil)},
		{name: "v2 LOCAL with a body", header: v2Header(0, 0x11, src4, dst4, nil)},
		{name: "v2 UNSPEC", header: v2Header(1, 0x00, src4, dst4, []byte("pad"))},
		{name: "v2 UNIX", header: v2Header(1, 0x31, src4, dst4, nil)},
		{name: "v2 UDP", header: v2Header(1, 0x12, src4, dst4, nil), err: "transport"},
		{name: "v2 bad family", header: v2Header(1, 0x41, src4, dst4, nil), err: "family"},
		{name: "v2 bad command", header: v2Header(2, 0x11, src4, dst4, nil), err: "command"},
		{name: "v2 short addresses", header: func() []byte {
			h := v2Header(1, 0x11, src4, dst4, nil) // IPv4 body under an IPv6 family
			h[13] = 0x21
			return h
		}(), err: "want 36"},
		{name: "v2 bad version", header: func() []byte { h := v2Header(1, 0x11, src4, dst4, nil); h[12] = 0x11; return h }(), err: "version 1"},
		{name: "v2 bad signature end", header: func() []byte { h := v2Header(1, 0x11, src4, dst4, nil); h[11] = 'X'; return h }(), err: "signature"},
		{name: "v2 too long", header: v2Header(1, 0x11, src4, dst4, make([]byte, 2100)), err: "at most 2048"},
		{name: "no header: a PostgreSQL start-up", header: []byte(after), err: "did not start with one"},
		{name: "no header: HTTP", header: []byte("GET / HTTP/1.1\r\n"), err: "did not start with one"},
		{name: "cut v1", header: []byte("PROXY TCP4 192.0.2.1"), cut: true, err: "ended inside it"},
		{name: "cut v2", header: v2Header(1, 0x11, src4, dst4, nil)[:20], cut: true, err: "ended inside it"},
		{name: "cut v2 signature", header: v2Sig[:10], cut: true, err: "ended inside it"},
		{name: "empty", header: nil, cut: true, err: "ended inside it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := append([]byte{}, tc.header...)
			if !tc.cut {
				data = append(data, after...)
			}
			r := bytes.NewReader(data)
			src, ok, err := ReadHeader(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrHeader) {
					t.Fatalf("ReadHeader = %v, %v, %v; want an ErrHeader containing %q", src, ok, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			got := ""
			if ok {
				got = src.String()
			}
			if got != tc.want {
				t.Errorf("ReadHeader = %q (ok %v), want %q", got, ok, tc.want)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != after {
				t.Errorf("after the header %q is left, want %q: ReadHeader read past its end", rest, after)
			}
		})
	}
}

// TestConn runs Conn on real loopback TCP connections: a trusted peer's
// header is read (and only the header), an untrusted peer is not read
// from, and a trusted peer that sends no header gets an error within the
// deadline rather than a hang.
func TestConn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func(t *testing.T, send []byte) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(send); err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	trusted := mustTrusted(t, "127.0.0.0/8")
	hdr := v2Header(1, 0x11, src4, dst4, nil)

	s := pair(t, append(hdr, "hello"...))
	addr, err := trusted.Conn(s)
	if err != nil || addr.String() != src4.String() {
		t.Fatalf("trusted peer: Conn = %v, %v; want %s", addr, err, src4)
	}
	rest := make([]byte, 5)
	if _, err := io.ReadFull(s, rest); err != nil || string(rest) != "hello" {
		t.Fatalf("after the header: %q, %v", rest, err)
	}

	s = pair(t, v2Header(0, 0, src4, dst4, nil))
	if addr, err := trusted.Conn(s); err != nil || addr.String() != s.RemoteAddr().String() {
		t.Errorf("LOCAL: Conn = %v, %v; want the peer %s", addr, err, s.RemoteAddr())
	}

	s = pair(t, append(hdr, "hello"...))
	addr, err = mustTrusted(t, "10.0.0.0/8").Conn(s)
	if err != nil || addr.String() != s.RemoteAddr().String() {
		t.Fatalf("untrusted peer: Conn = %v, %v; want the peer %s", addr, err, s.RemoteAddr())
	}
	all, _ := io.ReadAll(io.LimitReader(s, int64(len(hdr))))
	if !bytes.Equal(all, hdr) {
		t.Errorf("Conn read from an untrusted peer: %q left", all)
	}

	s = pair(t, []byte("PROXY TCP4 192.0.2.1 ")) // and then nothing
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, _, err = ReadHeader(s); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a stalled header: %v, want a timeout", err)
	}
}

// FuzzReadHeader feeds arbitrary bytes to ReadHeader: it must not panic,
// must never read more than a header can hold, must leave the bytes after
// a header it accepts unread, and a source it returns must be valid.
// Seeds: testdata/fuzz/FuzzReadHeader and the ones below.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 192.0.2.9 51234 5432\r\nrest"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::9 51234 5432\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, src4, dst4, []byte{1, 0, 2, 'h', '2'}))
	f.Add(v2Header(1, 0x21, src6, dst6, nil))
	f.Add(v2Header(0, 0, src4, dst4, nil))
	f.Add(v2Header(1, 0x31, src4, dst4, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		src, ok, err := ReadHeader(r)
		used := len(data) - r.Len()
		if used > 16+v2MaxLen {
			t.Fatalf("read %d bytes", used)
		}
		if err != nil {
			if ok {
				t.Fatal("ok with an error")
			}
			return
		}
		if ok && !src.Addr().IsValid() {
			t.Fatalf("ok with an invalid source %v", src)
		}
		if ok && src.Addr().Is4In6() {
			t.Fatalf("source %v not unmapped", src)
		}
		// A header ends where it says: v1 at its first LF, v2 after its length.
		if bytes.HasPrefix(data, []byte("PROXY ")) {
			if i := bytes.IndexByte(data, '\n'); i+1 != used {
				t.Fatalf("v1 header consumed %d bytes, its line has %d", used, i+1)
			}
		} else if want := 16 + int(binary.BigEndian.Uint16(data[14:16])); used != want {
			t.Fatalf("v2 header consumed %d bytes, its length says %d", used, want)
		}
	})
}
