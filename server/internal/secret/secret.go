// Package secret holds bitd's security primitives: the server secret, API
// keys, access tokens, argon2id password hashes and the derived passwords of
// the per-database PostgreSQL roles.
//
// API keys are "v2_" followed by 43 base62 characters drawn from crypto/rand
// (43·log2(62) ≈ 256 bits). Access tokens are "bkt_" followed by 43 base62
// characters. Only the SHA-256 hex digest of a key or token is stored
// (HashCredential); the plaintext is shown once when it is created.
//
// Passwords are hashed with argon2id (RFC 9106) and stored as PHC strings:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt b64>$<hash b64>
//
// with 19 MiB of memory, 2 passes, parallelism 1, a 16-byte random salt and a
// 32-byte key: the OWASP-recommended argon2id minimum. VerifyPassword
// compares in constant time and reads the parameters from the stored string,
// so older hashes (64 MiB, parallelism 2) still verify and the cost can be
// raised later.
//
// Hashing is memory-hard by design, so an unauthenticated login flood could
// otherwise exhaust the server's memory. Every argon2id computation in the
// process (HashPassword, VerifyPassword, VerifyPasswordWait) takes one of
// HashSlots slots, sized like GOMAXPROCS: at most HashSlots computations run
// at once, bounding their memory at HashSlots × 19 MiB (a hash with
// parallelism 1 uses one core, so more slots would only queue on the CPU).
// The login path uses VerifyPasswordWait, which waits a bounded time for a
// slot and otherwise returns ErrBusy (bitd answers 429 login_busy).
//
// Role passwords are never stored: RolePassword derives them from the server
// secret with HMAC-SHA256, so every replica that shares the secret computes
// the same password and no API can return one.
package secret

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Credential prefixes.
const (
	APIKeyPrefix = "v2_"
	TokenPrefix  = "bkt_"
	randomChars  = 43
)

// RandomBase62 returns n characters drawn uniformly from [0-9A-Za-z] with
// crypto/rand.
func RandomBase62(n int) string {
	var sb strings.Builder
	sb.Grow(n)
	max := big.NewInt(int64(len(base62)))
	for range n {
		i, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("secret: crypto/rand failed: " + err.Error())
		}
		sb.WriteByte(base62[i.Int64()])
	}
	return sb.String()
}

// NewAPIKey returns a fresh API key ("v2_" + 43 base62 characters).
func NewAPIKey() string { return APIKeyPrefix + RandomBase62(randomChars) }

// NewAccessToken returns a fresh opaque access token ("bkt_" + 43 base62).
func NewAccessToken() string { return TokenPrefix + RandomBase62(randomChars) }

// IsAccessToken reports whether s has the access-token prefix.
func IsAccessToken(s string) bool { return strings.HasPrefix(s, TokenPrefix) }

// HashCredential is the stored form of an API key or access token: the
// lowercase hex SHA-256 digest.
func HashCredential(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// RolePassword derives the password of the PostgreSQL login role `role` from
// the server secret: base64url(HMAC-SHA256(secret, "bitkit-role:"+role)),
// 43 characters. It is deterministic, so it never needs to be stored.
func RolePassword(secret []byte, role string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("bitkit-role:" + role))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Argon2id parameters used for new hashes.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// HashSlots is how many argon2id computations may run at once in this
// process (GOMAXPROCS at start-up, at least 1).
var HashSlots = max(1, runtime.GOMAXPROCS(0))

// ErrBusy means every hashing slot stayed taken for the whole wait: the
// caller should answer "busy, retry shortly".
var ErrBusy = errors.New("password hashing is at capacity; retry in a second")

var (
	hashSem      = make(chan struct{}, HashSlots)
	hashInFlight atomic.Int64
	hashPeak     atomic.Int64
)

// acquireHash takes a hashing slot, waiting at most maxWait (forever when
// maxWait <= 0) and no longer than ctx lives.
func acquireHash(ctx context.Context, maxWait time.Duration) error {
	select {
	case hashSem <- struct{}{}:
	default:
		var timeout <-chan time.Time
		if maxWait > 0 {
			tm := time.NewTimer(maxWait)
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case hashSem <- struct{}{}:
		case <-timeout:
			return ErrBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n := hashInFlight.Add(1)
	for {
		p := hashPeak.Load()
		if n <= p || hashPeak.CompareAndSwap(p, n) {
			break
		}
	}
	return nil
}

func releaseHash() {
	hashInFlight.Add(-1)
	<-hashSem
}

// HashPassword returns the argon2id PHC string of password. It waits for a
// hashing slot as long as it takes.
func HashPassword(password string) (string, error) {
	_ = acquireHash(context.Background(), 0)
	defer releaseHash()
	return hashPassword(password)
}

func hashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// ErrBadHash means a stored password hash is not an argon2id PHC string.
var ErrBadHash = errors.New("stored password hash is not an argon2id PHC string")

// VerifyPassword reports whether password matches the PHC string phc. The
// comparison is constant-time. It waits for a hashing slot as long as it
// takes.
func VerifyPassword(phc, password string) (bool, error) {
	_ = acquireHash(context.Background(), 0)
	defer releaseHash()
	return verifyPassword(phc, password)
}

// VerifyPasswordWait is VerifyPassword that waits at most maxWait (and no
// longer than ctx lives) for a hashing slot: it returns ErrBusy when none
// came free, or ctx's error. Callers verify DummyHash through it for unknown
// users so that both paths queue and work alike.
func VerifyPasswordWait(ctx context.Context, maxWait time.Duration, phc, password string) (bool, error) {
	if err := acquireHash(ctx, maxWait); err != nil {
		return false, err
	}
	defer releaseHash()
	return verifyPassword(phc, password)
}

func verifyPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrBadHash
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false, ErrBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, ErrBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// DummyHash is a valid hash of a random password, verified against when a
// login names an unknown user so that the work done is the same.
var DummyHash = func() string {
	h, err := hashPassword(RandomBase62(20))
	if err != nil {
		panic(err)
	}
	return h
}()

// LoadServerSecret returns the server secret: BITD_SECRET when envValue is
// non-empty (at least 32 bytes of text), else the 32 bytes in dataDir/secret,
// created with mode 0600 on first use.
func LoadServerSecret(envValue, dataDir string) ([]byte, error) {
	if envValue != "" {
		if len(envValue) < 32 {
			return nil, errors.New("BITD_SECRET is too short: use at least 32 characters (e.g. `openssl rand -hex 32`)")
		}
		return []byte(envValue), nil
	}
	if dataDir == "" {
		return nil, errors.New("no server secret: set BITD_SECRET or pass --data DIR (the secret is kept in DIR/secret)")
	}
	path := filepath.Join(dataDir, "secret")
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("server secret %s is shorter than 32 bytes: remove it to generate a new one (existing databases' role passwords change with it)", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read server secret: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dataDir, ".secret-*")
	if err != nil {
		return nil, fmt.Errorf("write server secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write server secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return os.ReadFile(path)
		}
		return nil, fmt.Errorf("write server secret: %w", err)
	}
	return b, nil
}

// SCRAMVerifier returns the SCRAM-SHA-256 secret of password in the form
// PostgreSQL stores in pg_authid ("SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>",
// RFC 5802/7677), with a fresh 16-byte salt. Passing it as a role's
// PASSWORD sets the password without its plaintext ever reaching the
// server, so a statement log or an error report cannot reveal it. password
// must be ASCII (RolePassword's output is), which SASLprep leaves unchanged.
func SCRAMVerifier(password string) string {
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("secret: crypto/rand failed: " + err.Error())
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		panic("secret: pbkdf2: " + err.Error())
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	enc := base64.StdEncoding
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc.EncodeToString(salt), enc.EncodeToString(stored[:]), enc.EncodeToString(server))
}

// Fingerprint identifies a server secret without revealing it: the hex
// HMAC-SHA256 of a fixed label. Replicas compare it to make sure they share
// the secret that role passwords derive from.
func Fingerprint(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("bitkit-secret-fingerprint"))
	return hex.EncodeToString(m.Sum(nil))
}
