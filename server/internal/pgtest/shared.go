package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Shared is a fixture that the tests of one test binary share (a platform
// database with its tables, pools, a handler and an httptest server in
// front): it is built once, by the first Get, over a database created for
// it on the binary's Cluster, and closed by Teardown (so by Main) after
// the tests, before the Cluster drops its databases. Declare one as a
// package variable; the zero value is ready.
//
//	var fixture pgtest.Shared[*env]
//
//	func setup(t testing.TB) *env { return fixture.Get(t, newEnv) }
//
//	func newEnv(c *pgtest.Cluster, d *pgtest.DB, cleanup func(func())) (*env, error) {
//		...
//		e.srv = httptest.NewServer(h)
//		cleanup(e.srv.Close)
//		...
//	}
type Shared[T any] struct {
	once sync.Once
	v    T
	err  error
}

// Get returns the fixture, built on first use by build over a new
// database d of c (Cluster.Create). Build registers what closes each thing
// it opens with cleanup, as it opens it (as with testing.T.Cleanup, the
// last registered runs first); when build fails, what it registered runs
// at once, and its error fails this and every later Get.
func (s *Shared[T]) Get(t testing.TB, build func(c *Cluster, d *DB, cleanup func(func())) (T, error)) T {
	t.Helper()
	c := Get(t)
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d, err := c.Create(ctx)
		if err != nil {
			s.err = err
			return
		}
		var fs []func()
		s.v, s.err = build(c, d, func(f func()) { fs = append(fs, f) })
		if s.err != nil {
			runReversed(fs)
			return
		}
		closersMu.Lock()
		closers = append(closers, fs...)
		closersMu.Unlock()
	})
	if s.err != nil {
		t.Fatalf("pgtest: set up the tests' shared fixture: %v", s.err)
	}
	return s.v
}

var (
	closersMu sync.Mutex
	closers   []func() // of the Shared fixtures built, in order
)

// closeShared runs the Shared fixtures' cleanups, the last registered
// first.
func closeShared() {
	closersMu.Lock()
	fs := closers
	closers = nil
	closersMu.Unlock()
	runReversed(fs)
}

func runReversed(fs []func()) {
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// RandHex returns n random bytes in hex: unique names for what tests
// create.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WithDatabase returns the connection URL raw with its database replaced
// by db (the same server and credentials), e.g. the cluster admin's URL
// (Cluster.AdminURL) for a metadata database. It panics when raw is not a
// URL: tests pass their own, which parsed before.
func WithDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic("pgtest: WithDatabase: the URL does not parse")
	}
	u.Path = "/" + db
	return u.String()
}
