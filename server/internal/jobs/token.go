package jobs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Download tokens are base64url(job id (16 bytes) ‖ expiry (8 bytes, Unix
// seconds, big endian)) + "." + base64url(HMAC-SHA256(key, those 24 bytes)),
// where key = HMAC-SHA256(server secret, "bitkit-download-url"). The token is
// the credential of GET /v2beta/files/{token}: no Authorization header.

var (
	errTokenInvalid = errors.New("invalid download token")
	errTokenExpired = errors.New("expired download token")
)

func downloadKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("bitkit-download-url"))
	return m.Sum(nil)
}

// signToken returns a token for job id valid until exp.
func signToken(key []byte, id string, exp time.Time) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", err
	}
	payload := make([]byte, 24)
	copy(payload, u[:])
	binary.BigEndian.PutUint64(payload[16:], uint64(exp.Unix()))
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(m.Sum(nil)), nil
}

// verifyToken checks the signature in constant time, then the expiry, and
// returns the job id.
func verifyToken(key []byte, token string, now time.Time) (string, error) {
	p, s, ok := strings.Cut(token, ".")
	if !ok {
		return "", errTokenInvalid
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	sig, err2 := enc.DecodeString(s)
	if err1 != nil || err2 != nil || len(payload) != 24 {
		return "", errTokenInvalid
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil), sig) {
		return "", errTokenInvalid
	}
	if now.Unix() > int64(binary.BigEndian.Uint64(payload[16:])) {
		return "", errTokenExpired
	}
	u, _ := uuid.FromBytes(payload[:16])
	return u.String(), nil
}
