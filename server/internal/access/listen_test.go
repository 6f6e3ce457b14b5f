package access

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// waitFor polls f until it is true, failing the test after 30 s.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	testwait.Eventually(t, 30*time.Second, func() error {
		if !f() {
			return errors.New(what)
		}
		return nil
	})
}

// openStore opens a store on a fresh metadata database, dropped at the end.
func openStore(t *testing.T, name string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{AdminURL: bitdtest.DatabaseURL(t), MetadataDB: name})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestListener runs the access layer on real PostgreSQL: a quiet listener
// stays on the same connection through its idle checks, a change made
// through another store (another replica) is dropped when its
// notification arrives, a change made through the Access's own store at
// once, and a killed listener turns the cache off until it is back.
func TestListener(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	name := bitdtest.UniqueName("bitkit_t_access_")
	st := openStore(t, name)
	other := openStore(t, name) // a second replica on the same metadata database
	t.Cleanup(func() {
		other.Close()
		if err := st.DropEverything(context.Background()); err != nil {
			t.Error(err)
		}
	})
	a := New(Config{Store: st})
	a.test.idleCheck = 20 * time.Millisecond
	if _, live := a.cache.generation(); live {
		t.Fatal("the cache is live before Start")
	}
	a.Start()
	defer a.Stop()
	waitFor(t, "listening", func() bool { _, live := a.cache.generation(); return live })

	app := ListenerApplicationName + " " + strconv.Itoa(os.Getpid())
	listenerPid := func() int {
		var pid int
		if err := st.DB.QueryRow(ctx, `SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	pid := listenerPid()
	if pid == 0 {
		t.Fatal("no listener in pg_stat_activity")
	}
	checks := a.test.checks.Load()
	waitFor(t, "three idle checks", func() bool { return a.test.checks.Load() >= checks+3 })
	if p := listenerPid(); p != pid {
		t.Fatalf("the quiet listener reconnected (pid %d, then %d)", pid, p)
	}

	u, err := st.CreateUser(ctx, "lis_user", "")
	if err != nil {
		t.Fatal(err)
	}
	cached := func(t *testing.T) string {
		t.Helper()
		k, err := st.CreateUserAPIKey(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := a.cache.len()
		for range 2 {
			if p, err := a.lookupPrincipal(ctx, k); err != nil || p.UserID != u.ID {
				t.Fatalf("lookup: %v %v", p, err)
			}
		}
		if a.cache.len() != n+1 {
			t.Fatalf("the principal was not cached (%d entries, had %d)", a.cache.len(), n)
		}
		return k
	}
	t.Run("revoked by another replica", func(t *testing.T) {
		k := cached(t)
		if _, err := other.RevokeAPIKey(ctx, k, ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the other replica's revoke", func() bool {
			_, err := a.lookupPrincipal(ctx, k)
			return errors.Is(err, store.ErrNotFound)
		})
	})
	t.Run("revoked through the same store", func(t *testing.T) {
		k := cached(t)
		if _, err := st.RevokeAPIKey(ctx, k, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := a.lookupPrincipal(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a key revoked through this replica's store: %v", err)
		}
	})
	t.Run("listener killed", func(t *testing.T) {
		k := cached(t)
		pid := listenerPid()
		if _, err := other.DB.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		// The cache turns off (and is flushed), then on again on a new
		// connection.
		waitFor(t, "relistened", func() bool { p := listenerPid(); return p != 0 && p != pid })
		waitFor(t, "live again", func() bool { _, live := a.cache.generation(); return live })
		if p, err := a.lookupPrincipal(ctx, k); err != nil || p.UserID != u.ID {
			t.Fatalf("lookup after the listener came back: %v %v", p, err)
		}
		if _, err := other.RevokeAPIKey(ctx, k, ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a revoke after the listener came back", func() bool {
			_, err := a.lookupPrincipal(ctx, k)
			return errors.Is(err, store.ErrNotFound)
		})
	})
}
