package txn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A tx_id is "tx_" + b64(owner) + "." + b64(random) + "." + b64(mac), b64
// being unpadded base64url, owner the host:port at which the replica that
// began the transaction takes HTTP requests from its peers, random 15
// bytes, and mac the first 12 bytes of HMAC-SHA256(key, owner, random)
// under a key derived from the server secret every replica shares. A
// replica that does not hold the transaction hands the request to the
// owner the tx_id names; the MAC means only a replica can have minted it,
// so bitd never sends a request to an address a client chose.
const idPrefix = "tx_"

var b64 = base64.RawURLEncoding

// deriveKey derives the key of tx_id MACs and hop signatures from the
// server secret.
func deriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("bitkit-tx-v1"))
	return m.Sum(nil)
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// newID mints a tx_id owned by owner.
func newID(key []byte, owner string) string {
	var rnd [15]byte
	_, _ = rand.Read(rnd[:])
	o, r := b64.EncodeToString([]byte(owner)), b64.EncodeToString(rnd[:])
	return idPrefix + o + "." + r + "." + b64.EncodeToString(mac(key, o, r)[:12])
}

// parseID checks id's MAC and returns its owner.
func parseID(key []byte, id string) (owner string, ok bool) {
	rest, ok := strings.CutPrefix(id, idPrefix)
	if !ok || len(id) > 300 {
		return "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", false
	}
	got, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, mac(key, parts[0], parts[1])[:12]) {
		return "", false
	}
	o, err := b64.DecodeString(parts[0])
	if err != nil {
		return "", false
	}
	return string(o), true
}

// HopHeader marks a request one replica handed to the replica that holds
// its transaction: "<unix seconds>.<b64 HMAC(key, "hop", tx_id, seconds)>".
const HopHeader = "X-Bitd-Tx-Hop"

// hopMaxAge bounds the clock difference (and replay window) of a hop.
const hopMaxAge = 60 * time.Second

func hopValue(key []byte, txID string, now time.Time) string {
	s := strconv.FormatInt(now.Unix(), 10)
	return s + "." + b64.EncodeToString(mac(key, "hop", txID, s))
}

func checkHop(key []byte, txID, v string, now time.Time) bool {
	s, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > hopMaxAge || d < -hopMaxAge {
		return false
	}
	got, err := b64.DecodeString(sig)
	return err == nil && hmac.Equal(got, mac(key, "hop", txID, s))
}
