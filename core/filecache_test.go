//go:build !js

package core

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

func TestFileTokenCacheFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fc := NewFileTokenCache(dir)
	ctx := t.Context()
	key := cacheKey("http://127.0.0.1:8080", "alice")
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok, err := fc.Get(ctx, key); ok || err != nil {
		t.Fatalf("empty cache: ok=%v err=%v", ok, err)
	}
	if err := fc.Put(ctx, key, CachedToken{AccessToken: "tok-abc", TokenType: "Bearer", Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := fc.Get(ctx, key)
	if err != nil || !ok || got.AccessToken != "tok-abc" || !got.Expiry.Equal(exp) {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}
	tokDir := filepath.Join(dir, "tokens")
	st, err := os.Stat(tokDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("token dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(tokDir)
	if len(entries) != 1 {
		t.Fatalf("token dir holds %d entries, want 1 (no temp files left)", len(entries))
	}
	name := entries[0].Name()
	fi, _ := entries[0].Info()
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, want 0600", fi.Mode().Perm())
	}
	if strings.Contains(name, "alice") || strings.Contains(name, "127.0.0.1") {
		t.Fatalf("file name %q shows the user or endpoint", name)
	}
	b, _ := os.ReadFile(filepath.Join(tokDir, name))
	if strings.Contains(string(b), testPassword) || strings.Contains(string(b), "password") {
		t.Fatalf("token file holds a password: %s", b)
	}
	// Another user at the same endpoint gets another file.
	if err := fc.Put(ctx, cacheKey("http://127.0.0.1:8080", "bob"), CachedToken{AccessToken: "tok-b", Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := fc.Get(ctx, key); got.AccessToken != "tok-abc" {
		t.Fatalf("alice's token = %q after bob's put", got.AccessToken)
	}
	if err := fc.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := fc.Get(ctx, key); ok {
		t.Fatal("token still there after Delete")
	}
	if err := fc.Delete(ctx, key); err != nil {
		t.Fatalf("deleting a missing token: %v", err)
	}
}

// TestFileTokenCacheThroughLogin checks the file the client writes when
// logging in: no password in it, and a name that does not depend on the password.
func TestFileTokenCacheThroughLogin(t *testing.T) {
	t.Parallel()
	as := newAuthServer()
	srv := newHTTPServer(t, as)
	dir := t.TempDir()
	login := func(password string) {
		c, _ := NewClient(srv, WithCredentials(UsernamePassword(testUser, password, WithTokenCache(NewFileTokenCache(dir)))))
		_ = c.Login(t.Context())
	}
	login(testPassword)
	login("another-password-entirely")
	entries, _ := os.ReadDir(filepath.Join(dir, "tokens"))
	if len(entries) != 1 {
		t.Fatalf("%d token files; the file name must depend on endpoint and user only", len(entries))
	}
	b, _ := os.ReadFile(filepath.Join(dir, "tokens", entries[0].Name()))
	if strings.Contains(string(b), testPassword) || !strings.Contains(string(b), "tok-1") {
		t.Fatalf("token file content: %s", b)
	}
	if l, _ := as.counts(); l != 1 {
		t.Fatalf("logins = %d; the second client should reuse the cached token", l)
	}
}

func TestFileTokenCacheFallback(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Log("running as root: a read-only directory is still writable, only the missing-parent case is meaningful")
	}
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	file := filepath.Join(t.TempDir(), "plainfile")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{ro, filepath.Join(file, "sub")} {
		fc := NewFileTokenCache(dir)
		ctx := context.Background()
		if err := fc.Put(ctx, "k", CachedToken{AccessToken: "tok-m", Expiry: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("%s: Put = %v, want silent memory fallback", dir, err)
		}
		got, ok, err := fc.Get(ctx, "k")
		if err != nil || !ok || got.AccessToken != "tok-m" {
			t.Fatalf("%s: Get = %v %v %v", dir, got, ok, err)
		}
		if err := fc.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
}

const cacheHelperEnv = "BITKIT_CORE_CACHE_HELPER_DIR"

// TestFileTokenCacheHelperProcess is the child of TestFileTokenCacheProcesses.
func TestFileTokenCacheHelperProcess(t *testing.T) {
	dir := os.Getenv(cacheHelperEnv)
	if dir == "" {
		return // only meaningful as a helper process
	}
	hammerCache(t, dir, os.Getpid(), 400)
}

// hammerCache writes and reads one key many times, failing on any torn or
// foreign content.
func hammerCache(t *testing.T, dir string, id, n int) {
	fc := NewFileTokenCache(dir).(*fileCache)
	ctx := context.Background()
	key := cacheKey("http://127.0.0.1:8080", "shared")
	path := fc.path(key)
	for i := range n {
		tok := CachedToken{AccessToken: fmt.Sprintf("tok-%d-%d-%s", id, i, strings.Repeat("x", i%512)), Expiry: time.Now().Add(time.Hour)}
		if err := fc.Put(ctx, key, tok); err != nil {
			t.Fatalf("put: %v", err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("iteration %d: reading the token file: %v", i, err)
		}
		var tf tokenFile
		if err := jsonx.Unmarshal(b, &tf); err != nil || !strings.HasPrefix(tf.AccessToken, "tok-") || tf.Key != keyHash(key) {
			t.Fatalf("iteration %d: torn or corrupt token file %q: %v", i, b, err)
		}
		if got, ok, err := fc.Get(ctx, key); err != nil || !ok || !strings.HasPrefix(got.AccessToken, "tok-") {
			t.Fatalf("iteration %d: Get = %v %v %v", i, got, ok, err)
		}
	}
}

func TestFileTokenCacheProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFileTokenCacheHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), cacheHelperEnv+"="+dir)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(out.String())
			}
		})
	}
	hammerCache(t, dir, os.Getpid(), 400) // and this process too
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process %d: %v", cmd.Process.Pid, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tokens"))
	if len(entries) != 1 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("token dir after the run: %v; want exactly one file and no temp files", names)
	}
}
