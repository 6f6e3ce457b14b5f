package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdmit: Config.Admit is asked before the backend connection; its
// refusal reaches the client as FATAL 53300 with its text, and its release
// runs once when the session ends (and for no refused session).
func TestAdmit(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	var mu sync.Mutex
	inUse, released := 0, 0
	cfg := Config{DevTLS: true, Admit: func(_ context.Context, tg *WireTarget) (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		if tg.PGDatabase != f.pgDB {
			t.Errorf("Admit got database %q, want %q", tg.PGDatabase, f.pgDB)
		}
		if inUse >= 1 {
			return nil, errors.New("too many connections for this account: it has 1 of 1 database connections in use")
		}
		inUse++
		var once sync.Once
		return func() {
			once.Do(func() {
				mu.Lock()
				inUse--
				released++
				mu.Unlock()
			})
		}, nil
	}}
	srv, addr := startProxy(t, cfg, auth)
	c1, err := connect(t, addr, key, testDB, "require")
	if err != nil {
		t.Fatal(err)
	}
	_, err = connect(t, addr, key, testDB, "require")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, "1 of 1 database connections") {
		t.Fatalf("second session: %v, want FATAL 53300 with Admit's message", err)
	}
	c1.Close(t.Context())
	testwait.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		r, n := released, inUse
		mu.Unlock()
		if r == 1 && n == 0 && srv.Sessions() == 0 {
			return nil
		}
		return fmt.Errorf("after closing the session: released %d times, %d in use, %d sessions; want 1, 0, 0", r, n, srv.Sessions())
	})
	if _, err := connect(t, addr, key, testDB, "require"); err != nil {
		t.Fatalf("after the release: %v", err)
	}
}
