package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup-phase request codes (the first 4 bytes after the length).
const (
	codeCancel = 80877102
	codeSSL    = 80877103
	codeGSSEnc = 80877104
)

const (
	maxStartupLen  = 10000 // MAX_STARTUP_PACKET_LENGTH in PostgreSQL
	maxPasswordLen = 4096
)

type errorMsg = pgproto3.ErrorResponse

// fatal builds a FATAL ErrorResponse.
func fatal(code, msg string) *errorMsg {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}
}

// startupPacket is a decoded startup-phase packet.
type startupPacket struct {
	code    uint32 // codeCancel, codeSSL, codeGSSEnc, or a protocol version (major<<16 | minor)
	params  map[string]string
	pid     uint32 // CancelRequest
	secret  []byte // CancelRequest
	options []string
}

func (p *startupPacket) isStartup() bool { return p.code>>16 == 3 }

var errProtocol = errors.New("invalid startup packet")

// readStartup reads one length-prefixed startup-phase packet.
func readStartup(r io.Reader) (*startupPacket, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int64(int32(binary.BigEndian.Uint32(hdr[:])))
	if string(hdr[:]) == "PROX" || string(hdr[:]) == "\r\n\r\n" {
		return nil, fmt.Errorf("%w: it starts like a PROXY protocol header, which bitd reads only from the addresses of --trusted-proxies with --wire-proxy-protocol", errProtocol)
	}
	if n < 8 || n > maxStartupLen {
		return nil, fmt.Errorf("%w: length %d", errProtocol, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%w: %w", errProtocol, io.ErrUnexpectedEOF)
	}
	return decodeStartup(body)
}

// decodeStartup decodes the body of a startup-phase packet (after its length).
func decodeStartup(body []byte) (*startupPacket, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: too short", errProtocol)
	}
	p := &startupPacket{code: binary.BigEndian.Uint32(body)}
	rest := body[4:]
	switch {
	case p.code == codeSSL || p.code == codeGSSEnc:
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: request with a body", errProtocol)
		}
		return p, nil
	case p.code == codeCancel:
		if len(rest) < 8 || len(rest) > 4+256 {
			return nil, fmt.Errorf("%w: cancel request of %d bytes", errProtocol, len(body))
		}
		p.pid = binary.BigEndian.Uint32(rest)
		p.secret = bytes.Clone(rest[4:])
		return p, nil
	case p.isStartup():
		p.params = map[string]string{}
		for {
			key, r, ok := bytes.Cut(rest, []byte{0})
			if !ok {
				return nil, fmt.Errorf("%w: unterminated parameter list", errProtocol)
			}
			if len(key) == 0 {
				if len(r) != 0 {
					return nil, fmt.Errorf("%w: data after the parameter list", errProtocol)
				}
				return p, nil
			}
			val, r2, ok := bytes.Cut(r, []byte{0})
			if !ok {
				return nil, fmt.Errorf("%w: parameter %q has no value", errProtocol, key)
			}
			k := string(key)
			if strings.HasPrefix(k, "_pq_.") {
				p.options = append(p.options, k)
			} else {
				p.params[k] = string(val)
			}
			rest = r2
		}
	default:
		return nil, fmt.Errorf("%w: unsupported protocol %d.%d (bitd speaks protocol 3)", errProtocol, p.code>>16, p.code&0xffff)
	}
}

// readPassword reads a PasswordMessage ('p') and returns the password.
func readPassword(r io.Reader) (string, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", err
	}
	return decodePassword(hdr, r)
}

func decodePassword(hdr [5]byte, r io.Reader) (string, error) {
	if hdr[0] != 'p' {
		return "", fmt.Errorf("%w: expected a password message, got message type %q", errProtocol, hdr[0])
	}
	n := int64(int32(binary.BigEndian.Uint32(hdr[1:])))
	if n < 5 || n > maxPasswordLen+5 {
		return "", fmt.Errorf("%w: password message length %d", errProtocol, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("%w: %w", errProtocol, io.ErrUnexpectedEOF)
	}
	if i := bytes.IndexByte(body, 0); i != len(body)-1 {
		return "", fmt.Errorf("%w: malformed password message", errProtocol)
	}
	return string(body[:len(body)-1]), nil
}

// parseDatabase normalizes the startup "database" parameter to account/db.
// It accepts account/db, "account/db" (double-quoted) and URL-encoded forms
// (account%2Fdb).
func parseDatabase(raw string) (string, bool) {
	s := strings.TrimSpace(raw)
	if strings.Contains(s, "%") {
		u, err := url.PathUnescape(s)
		if err != nil {
			return "", false
		}
		s = strings.TrimSpace(u)
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	account, db, ok := strings.Cut(s, "/")
	if !ok || !validAccount(account) || !validDBName(db) {
		return "", false
	}
	return account + "/" + db, true
}

// validAccount: 1–38 characters [A-Za-z0-9_-], starting with a letter, digit
// or underscore.
func validAccount(s string) bool {
	if len(s) < 1 || len(s) > 38 || s[0] == '-' {
		return false
	}
	return allNameChars(s)
}

// validDBName: 1–23 characters [A-Za-z0-9_-].
func validDBName(s string) bool {
	return len(s) >= 1 && len(s) <= 23 && allNameChars(s)
}

func allNameChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// quoteName quotes a client-supplied name for an error message, capped.
func quoteName(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}
