//go:build unix

package core

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileTokenCacheLock checks that two file caches on one directory (as
// two processes would have) take turns for a key, and not across keys.
func TestFileTokenCacheLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := NewFileTokenCache(dir).(TokenLocker), NewFileTokenCache(dir).(TokenLocker)
	ctx := t.Context()
	unlock, err := a.Lock(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "k1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock of a held key: %v, want it to wait until its context ends", err)
	}
	other, err := b.Lock(ctx, "k2")
	if err != nil {
		t.Fatalf("Lock of another key: %v", err)
	}
	other()
	unlock()
	unlock2, err := b.Lock(ctx, "k1")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
	locks, _ := filepath.Glob(filepath.Join(dir, "tokens", "*.lock"))
	if len(locks) != 2 {
		t.Fatalf("lock files %v, want one per key", locks)
	}
	for _, p := range locks {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
			t.Fatalf("lock file %s: %v, %v; want empty, mode 0600", p, fi.Mode(), err)
		}
	}
}
