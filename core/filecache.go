//go:build !js

package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// fileCache is a TokenCache with one file per key under dir/tokens.
type fileCache struct {
	dir string // the tokens directory; "" when unusable

	once sync.Once
	ok   bool
	mem  TokenCache // used when the directory cannot be used
}

// NewFileTokenCache returns a TokenCache that keeps each token in its own
// file under dir/tokens ("" means os.UserCacheDir()/bitkit), so that several
// processes (CLI runs, say) share one login. The file is named by a SHA-256
// hash of the endpoint and user name, never of the password, and holds only
// the access token, the refresh token of its login session and their
// expiry times. Files are mode 0600 in a 0700 directory and are
// written to a temporary file then renamed over the old one, so readers never
// see a partial file and concurrent writers leave one complete token (the
// last rename wins). When the directory is missing and cannot be created,
// or is not writable, the cache silently keeps tokens in memory instead.
// The cache is a TokenLocker: on Unix an exclusive flock(2) on a lock file
// next to the token file (NAME.lock, empty) lets one process at a time
// refresh a session; elsewhere the lock is held within the process only.
// Safe for concurrent use.
func NewFileTokenCache(dir string) TokenCache {
	fc := &fileCache{mem: NewMemoryTokenCache()}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil || base == "" {
			return fc
		}
		dir = filepath.Join(base, "bitkit")
	}
	fc.dir = filepath.Join(dir, "tokens")
	return fc
}

// usable creates the directory once and reports whether files can be used.
func (f *fileCache) usable() bool {
	f.once.Do(func() {
		if f.dir == "" {
			return
		}
		if err := os.MkdirAll(f.dir, 0o700); err != nil {
			return
		}
		_ = os.Chmod(f.dir, 0o700)
		probe, err := os.CreateTemp(f.dir, ".probe-*")
		if err != nil {
			return
		}
		name := probe.Name()
		probe.Close()
		os.Remove(name)
		f.ok = true
	})
	return f.ok
}

func (f *fileCache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(f.dir, hex.EncodeToString(sum[:16])+".json")
}

type tokenFile struct {
	Key string `json:"key_sha256"`
	CachedToken
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Get reads the token of key; an unreadable or damaged file counts as missing.
func (f *fileCache) Get(ctx context.Context, key string) (CachedToken, bool, error) {
	if !f.usable() {
		return f.mem.Get(ctx, key)
	}
	b, err := os.ReadFile(f.path(key))
	if err != nil {
		return f.mem.Get(ctx, key)
	}
	var tf tokenFile
	if err := jsonx.Unmarshal(b, &tf); err != nil || tf.Key != keyHash(key) || tf.AccessToken == "" {
		return f.mem.Get(ctx, key)
	}
	return tf.CachedToken, true, nil
}

// Put writes the token of key atomically (temporary file, then rename).
func (f *fileCache) Put(ctx context.Context, key string, t CachedToken) error {
	if !f.usable() {
		return f.mem.Put(ctx, key, t)
	}
	b, err := jsonx.Marshal(tokenFile{Key: keyHash(key), CachedToken: t})
	if err != nil {
		return fmt.Errorf("core: token cache: encoding: %w", err)
	}
	tmp, err := os.CreateTemp(f.dir, ".tok-*")
	if err != nil {
		return f.mem.Put(ctx, key, t)
	}
	name := tmp.Name()
	_, werr := tmp.Write(b)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(name, 0o600)
	}
	if werr == nil {
		werr = os.Rename(name, f.path(key))
	}
	if werr != nil {
		os.Remove(name)
		return f.mem.Put(ctx, key, t)
	}
	return nil
}

// Lock takes the lock of key, waiting for the process holding it (see
// NewFileTokenCache) until ctx ends.
func (f *fileCache) Lock(ctx context.Context, key string) (func(), error) {
	if !f.usable() {
		return processLock(ctx, key)
	}
	unlock, err := lockFile(ctx, strings.TrimSuffix(f.path(key), ".json")+".lock")
	switch {
	case err == nil:
		return unlock, nil
	case ctx.Err() != nil:
		return nil, err // the holder kept it until ctx ended
	default:
		// A lock file that cannot be opened must not stop the refresh:
		// at least the callers in this process take turns.
		return processLock(ctx, key)
	}
}

// processLocks are the in-process locks of keys (channels of capacity 1).
var processLocks sync.Map

func processLock(ctx context.Context, key string) (func(), error) {
	v, _ := processLocks.LoadOrStore(key, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Delete removes the token file of key.
func (f *fileCache) Delete(ctx context.Context, key string) error {
	_ = f.mem.Delete(ctx, key)
	if !f.usable() {
		return nil
	}
	if err := os.Remove(f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("core: token cache: removing the token file in %s: %w", f.dir, err)
	}
	return nil
}
