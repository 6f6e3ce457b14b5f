package secret

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

func TestAPIKeyAndTokenFormat(t *testing.T) {
	t.Parallel()
	keyRE := regexp.MustCompile(`^v2_[0-9A-Za-z]{43}$`)
	tokRE := regexp.MustCompile(`^bkt_[0-9A-Za-z]{43}$`)
	seen := map[string]bool{}
	for range 100 {
		k, tok := NewAPIKey(), NewAccessToken()
		if !keyRE.MatchString(k) {
			t.Fatalf("API key %q does not match %s", k, keyRE)
		}
		if !tokRE.MatchString(tok) || !IsAccessToken(tok) || IsAccessToken(k) {
			t.Fatalf("token %q: format or prefix detection wrong", tok)
		}
		if seen[k] {
			t.Fatal("duplicate API key")
		}
		seen[k] = true
	}
}

func TestHashCredential(t *testing.T) {
	t.Parallel()
	got := HashCredential("abc")
	if got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashCredential(abc) = %s, want the SHA-256 hex digest", got)
	}
}

func TestRolePassword(t *testing.T) {
	t.Parallel()
	s1, s2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	p := RolePassword(s1, "bk_1_owner")
	if p != RolePassword(s1, "bk_1_owner") {
		t.Fatal("RolePassword is not deterministic")
	}
	if p == RolePassword(s1, "bk_1_reader") || p == RolePassword(s2, "bk_1_owner") {
		t.Fatal("RolePassword must differ per role and per secret")
	}
	if len(p) != 43 || strings.ContainsAny(p, "'\"\\ ") {
		t.Fatalf("RolePassword = %q: want 43 URL-safe characters", p)
	}
}

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not the documented PHC string", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, tc := range []struct {
		name, hash, pw string
		want           bool
		wantErr        bool
	}{
		{"right", h, "correct horse", true, false},
		{"wrong", h, "correct horsE", false, false},
		{"empty", h, "", false, false},
		{"garbage hash", "$bcrypt$xyz", "x", false, true},
		{"bad params", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA", "x", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := VerifyPassword(tc.hash, tc.pw)
			if ok != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("VerifyPassword = %v, %v; want %v, error %v", ok, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestLoadServerSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := LoadServerSecret("", dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "secret"))
	if err != nil || st.Mode().Perm() != 0o600 || len(a) != 32 {
		t.Fatalf("secret file: %v, mode %v, len %d; want 0600 and 32 bytes", err, st.Mode().Perm(), len(a))
	}
	b, err := LoadServerSecret("", dir)
	if err != nil || string(a) != string(b) {
		t.Fatal("second load returned a different secret")
	}
	env := strings.Repeat("z", 40)
	c, err := LoadServerSecret(env, dir)
	if err != nil || string(c) != env {
		t.Fatal("BITD_SECRET must win over the file")
	}
	if _, err := LoadServerSecret("short", dir); err == nil || strings.Contains(err.Error(), "short\"") {
		t.Fatalf("short BITD_SECRET: err = %v; want an error that does not echo it", err)
	}
}

func TestSCRAMVerifier(t *testing.T) {
	t.Parallel()
	pw := RolePassword([]byte("0123456789abcdef0123456789abcdef"), "bk_x_reader")
	a, b := SCRAMVerifier(pw), SCRAMVerifier(pw)
	re := regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$`)
	if !re.MatchString(a) {
		t.Errorf("verifier %q is not in PostgreSQL's SCRAM-SHA-256 format", a)
	}
	if a == b {
		t.Error("two verifiers share a salt")
	}
	if strings.Contains(a, pw) {
		t.Error("verifier contains the password")
	}
}

// TestHashLimiter runs far more verifications at once than there are slots:
// never more than HashSlots run together, and with every slot held a bounded
// wait ends in ErrBusy (or the context's error) instead of queueing forever.
func TestHashLimiter(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	enc := base64.RawStdEncoding
	old := fmt.Sprintf("$argon2id$v=19$m=65536,t=2,p=2$%s$%s", enc.EncodeToString(salt),
		enc.EncodeToString(argon2.IDKey([]byte("pw"), salt, 2, 64*1024, 2, 32)))
	if ok, err := VerifyPassword(old, "pw"); !ok || err != nil {
		t.Fatalf("a 64 MiB hash from before the cost change no longer verifies: %v, %v", ok, err)
	}
	n := HashSlots*4 + 2
	var wg sync.WaitGroup
	var busy, okCount atomic.Int64
	for range n {
		wg.Go(func() {
			ok, err := VerifyPasswordWait(t.Context(), time.Hour, h, "pw")
			switch {
			case err == nil && ok:
				okCount.Add(1)
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			default:
				t.Errorf("VerifyPasswordWait = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
	if okCount.Load() != int64(n) || busy.Load() != 0 {
		t.Fatalf("with a long wait all %d verifications must succeed; got %d ok, %d busy", n, okCount.Load(), busy.Load())
	}
	if p := hashPeak.Load(); p < 1 || p > int64(HashSlots) {
		t.Fatalf("peak concurrent hashes = %d; want 1..%d", p, HashSlots)
	}

	// Hold every slot: a bounded wait reports ErrBusy, a cancelled context
	// its own error.
	for range HashSlots {
		if err := acquireHash(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
	}
	_, err = VerifyPasswordWait(t.Context(), 10*time.Millisecond, h, "pw")
	if !errors.Is(err, ErrBusy) {
		t.Errorf("all slots held: err = %v; want ErrBusy", err)
	}
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err = VerifyPasswordWait(cctx, time.Hour, h, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v; want context.Canceled", err)
	}
	for range HashSlots {
		releaseHash()
	}
	if ok, err := VerifyPasswordWait(t.Context(), time.Second, h, "pw"); !ok || err != nil {
		t.Fatalf("after release: %v, %v", ok, err)
	}
}
