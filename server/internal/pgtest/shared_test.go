package pgtest_test

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
)

// fatalTB records a Fatal instead of failing the test, and ends the
// goroutine that called it, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestShared: a Shared fixture is built once, over a fresh platform
// database, and its cleanups run in reverse order when the shared
// fixtures close; a failed build runs what it registered at once and fails
// every Get with its error.
func TestShared(t *testing.T) {
	var closed []string
	builds := 0
	var fixture pgtest.Shared[string]
	build := func(c *pgtest.Cluster, d *pgtest.DB, cleanup func(func())) (string, error) {
		builds++
		cleanup(func() { closed = append(closed, "pool") })
		cleanup(func() { closed = append(closed, "server") })
		return d.Name, d.Exec(t.Context(), d.Owner, "CREATE TABLE t (id int)")
	}
	first := fixture.Get(t, build)
	if again := fixture.Get(t, build); again != first || builds != 1 {
		t.Fatalf("second Get: %q after %q, %d builds; want the same fixture, 1 build", again, first, builds)
	}
	if len(closed) != 0 {
		t.Fatalf("closed %v before the fixtures closed", closed)
	}
	pgtest.CloseShared()
	if want := []string{"server", "pool"}; !slices.Equal(closed, want) {
		t.Fatalf("closed %v, want %v (the last registered first)", closed, want)
	}

	closed = nil
	var broken pgtest.Shared[string]
	for range 2 {
		f := &fatalTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			broken.Get(f, func(_ *pgtest.Cluster, _ *pgtest.DB, cleanup func(func())) (string, error) {
				cleanup(func() { closed = append(closed, "half-built") })
				return "", errors.New("the table could not be created")
			})
		}()
		<-done
		if !strings.Contains(f.msg, "the table could not be created") {
			t.Fatalf("Get of a failed build: Fatal %q, want the build's error", f.msg)
		}
	}
	if want := []string{"half-built"}; !slices.Equal(closed, want) {
		t.Fatalf("a failed build closed %v, want %v once", closed, want)
	}
	pgtest.CloseShared()
	if len(closed) != 1 {
		t.Fatalf("the fixtures' close ran a failed build's cleanup again: %v", closed)
	}
}
