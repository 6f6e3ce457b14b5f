package clientaddr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The PROXY protocol (HAProxy's "send-proxy" and "send-proxy-v2"): a
// balancer that relays TCP connections sends, before the client's first
// byte, one header naming the client's address. Version 1 is a text line
// ("PROXY TCP4 192.0.2.1 192.0.2.9 51234 5432\r\n", at most 107 bytes),
// version 2 a binary block (a 12-byte signature, version and command,
// family, length, the addresses, then optional TLVs).

// v2Sig is the signature that starts a version 2 header.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	// v1MaxLen is the longest version 1 header, CRLF included.
	v1MaxLen = 107
	// v2MaxLen bounds a version 2 header's address and TLV block. The
	// addresses take at most 216 bytes (AF_UNIX); the rest leaves room
	// for the TLVs balancers add (ALPN, authority, unique IDs, cloud
	// endpoint IDs) without letting a peer make bitd buffer 64 KiB.
	v2MaxLen = 2048
	// HeaderTimeout bounds the wait for the header: a balancer sends it
	// as soon as it has connected.
	HeaderTimeout = 10 * time.Second
)

// ErrHeader is wrapped by every error of ReadHeader about the bytes read
// (as opposed to I/O errors): they are not a valid PROXY header.
var ErrHeader = errors.New("invalid PROXY protocol header")

func headerErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrHeader, fmt.Sprintf(format, args...))
}

// ReadHeader reads one PROXY protocol header, version 1 or 2, from r and
// not one byte past it, so that r can be handed on as it is (to TLS, to
// the PostgreSQL start-up). It returns the source address the header
// names; ok is false when the header names none (version 2 LOCAL, as in a
// balancer's health check; version 1 UNKNOWN; version 2 with an
// unspecified or Unix family), in which case the connection's own address
// applies. Reads are bounded: at most 107 bytes for version 1 and
// 16+2048 for version 2; the caller bounds the time (see Conn).
func ReadHeader(r io.Reader) (src netip.AddrPort, ok bool, err error) {
	var start [8]byte
	if _, err := io.ReadFull(r, start[:]); err != nil {
		return netip.AddrPort{}, false, noHeader(err)
	}
	switch {
	case bytes.Equal(start[:], v2Sig[:8]):
		return readV2(r, start)
	case bytes.HasPrefix(start[:], []byte("PROXY ")):
		return readV1(r, start)
	}
	return netip.AddrPort{}, false, headerErr("the connection did not start with one (expected \"PROXY \" or the version 2 signature)")
}

// noHeader describes an I/O error before the header was complete.
func noHeader(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the connection ended inside it", ErrHeader)
	}
	return fmt.Errorf("reading the PROXY protocol header: %w", err)
}

// readV1 reads the rest of a version 1 line one byte at a time (it is
// short, and reading ahead would swallow the client's first bytes).
func readV1(r io.Reader, start [8]byte) (netip.AddrPort, bool, error) {
	line := make([]byte, 8, v1MaxLen)
	copy(line, start[:])
	var b [1]byte
	for line[len(line)-1] != '\n' {
		if len(line) == v1MaxLen {
			return netip.AddrPort{}, false, headerErr("version 1 line longer than %d bytes", v1MaxLen)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return netip.AddrPort{}, false, noHeader(err)
		}
		line = append(line, b[0])
	}
	return parseV1(line)
}

// parseV1 parses a complete version 1 line, CRLF included.
func parseV1(line []byte) (netip.AddrPort, bool, error) {
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		return netip.AddrPort{}, false, headerErr("version 1 line does not end in CRLF")
	}
	f := strings.Split(s, " ")
	if len(f) < 2 || f[0] != "PROXY" {
		return netip.AddrPort{}, false, headerErr("version 1 line without a protocol")
	}
	switch f[1] {
	case "UNKNOWN":
		return netip.AddrPort{}, false, nil // the rest is to be ignored
	case "TCP4", "TCP6":
	default:
		return netip.AddrPort{}, false, headerErr("version 1 protocol %q (want TCP4, TCP6 or UNKNOWN)", f[1])
	}
	if len(f) != 6 {
		return netip.AddrPort{}, false, headerErr("version 1 %s line has %d fields, want 6", f[1], len(f))
	}
	var addrs [2]netip.Addr
	for i, a := range f[2:4] {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" || (f[1] == "TCP4") != ip.Is4() {
			return netip.AddrPort{}, false, headerErr("version 1 %s address %q", f[1], a)
		}
		addrs[i] = ip
	}
	var ports [2]uint16
	for i, p := range f[4:6] {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return netip.AddrPort{}, false, headerErr("version 1 port %q", p)
		}
		ports[i] = uint16(n)
	}
	return netip.AddrPortFrom(addrs[0], ports[0]), true, nil
}

// readV2 reads the rest of a version 2 header: the signature's last 4
// bytes, version/command, family, length, then length bytes.
func readV2(r io.Reader, start [8]byte) (netip.AddrPort, bool, error) {
	var hdr [16]byte
	copy(hdr[:], start[:])
	if _, err := io.ReadFull(r, hdr[8:]); err != nil {
		return netip.AddrPort{}, false, noHeader(err)
	}
	if !bytes.Equal(hdr[:12], v2Sig) {
		return netip.AddrPort{}, false, headerErr("version 2 signature")
	}
	n := int(binary.BigEndian.Uint16(hdr[14:]))
	if n > v2MaxLen {
		return netip.AddrPort{}, false, headerErr("version 2 header of %d bytes (at most %d accepted)", n, v2MaxLen)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return netip.AddrPort{}, false, noHeader(err)
	}
	return parseV2(hdr[12], hdr[13], body)
}

// parseV2 parses a version 2 header from its version/command byte, its
// family byte and the block after the length.
func parseV2(verCmd, fam byte, body []byte) (netip.AddrPort, bool, error) {
	if verCmd>>4 != 2 {
		return netip.AddrPort{}, false, headerErr("version %d (want 2)", verCmd>>4)
	}
	switch verCmd & 0xF {
	case 0: // LOCAL: the balancer's own connection (a health check)
		return netip.AddrPort{}, false, nil
	case 1: // PROXY
	default:
		return netip.AddrPort{}, false, headerErr("version 2 command %d (want LOCAL or PROXY)", verCmd&0xF)
	}
	var size int
	switch fam >> 4 {
	case 0: // AF_UNSPEC
		return netip.AddrPort{}, false, nil
	case 1: // AF_INET
		size = 4
	case 2: // AF_INET6
		size = 16
	case 3: // AF_UNIX: no address bitd can key by
		if len(body) < 216 {
			return netip.AddrPort{}, false, headerErr("version 2 Unix addresses in %d bytes (want 216)", len(body))
		}
		return netip.AddrPort{}, false, nil
	default:
		return netip.AddrPort{}, false, headerErr("version 2 address family %d", fam>>4)
	}
	if t := fam & 0xF; t != 1 { // SOCK_STREAM; bitd's listeners are TCP
		return netip.AddrPort{}, false, headerErr("version 2 transport %d (want 1, stream)", t)
	}
	if len(body) < 2*size+4 {
		return netip.AddrPort{}, false, headerErr("version 2 addresses in %d bytes (want %d)", len(body), 2*size+4)
	}
	src, _ := netip.AddrFromSlice(body[:size])
	port := binary.BigEndian.Uint16(body[2*size:])
	return netip.AddrPortFrom(src.Unmap(), port), true, nil
}

// Conn reads the PROXY protocol header a trusted proxy sends at the start
// of c, and returns the client address it names; when c's peer is not
// trusted, it reads nothing and returns c's own address, and when the
// header names no address (a health check), c's peer address. It sets
// and then clears a read deadline of HeaderTimeout. An error means the
// peer is trusted but sent no valid header: end the connection.
func (t *Trusted) Conn(c net.Conn) (net.Addr, error) {
	peer := c.RemoteAddr()
	if !t.Contains(peerAddr(peer.String())) {
		return peer, nil
	}
	if err := c.SetReadDeadline(time.Now().Add(HeaderTimeout)); err != nil {
		return nil, err
	}
	src, ok, err := ReadHeader(c)
	if err != nil {
		return nil, fmt.Errorf("from %s (a trusted proxy, so a PROXY protocol header is required): %w", peer, err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	if !ok {
		return peer, nil
	}
	return net.TCPAddrFromAddrPort(src), nil
}
