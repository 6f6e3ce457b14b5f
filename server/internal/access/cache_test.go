package access

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

func TestCache(t *testing.T) {
	t.Parallel()
	t.Run("off until live, flushed when it goes off", func(t *testing.T) {
		t.Parallel()
		c := newCache(10, time.Minute)
		gen, live := c.generation()
		if live {
			t.Fatal("a new cache is live before its listener")
		}
		c.put(gen, "k", 1, time.Time{}, "cred:1")
		if c.len() != 0 {
			t.Fatal("a cache that is not live stored an answer")
		}
		c.setLive(true)
		gen, _ = c.generation()
		c.put(gen, "k", 1, time.Time{}, "cred:1")
		if v, ok := c.get("k"); !ok || v != 1 {
			t.Fatalf("get = %v, %v", v, ok)
		}
		c.setLive(false)
		if _, ok := c.get("k"); ok || c.len() != 0 {
			t.Fatal("the cache served or kept an answer after its listener went down")
		}
	})
	t.Run("an answer read before an invalidation is not stored", func(t *testing.T) {
		t.Parallel()
		c := newCache(10, time.Minute)
		c.setLive(true)
		gen, _ := c.generation()
		c.invalidate([]string{"db:other"})
		c.put(gen, "k", 1, time.Time{}, "cred:1")
		if _, ok := c.get("k"); ok {
			t.Fatal("stored an answer older than an invalidation")
		}
	})
	t.Run("tags, all, age and size", func(t *testing.T) {
		t.Parallel()
		c := newCache(100, time.Minute)
		c.setLive(true)
		gen, _ := c.generation()
		c.put(gen, "a", 1, time.Time{}, "cred:1", "db:x")
		c.put(gen, "b", 2, time.Time{}, "cred:2", "db:y")
		c.put(gen, "old", 3, time.Now().Add(-time.Second))
		c.put(gen, "soon", 4, time.Now().Add(time.Millisecond))
		c.invalidate([]string{"db:x"})
		if _, ok := c.get("a"); ok {
			t.Fatal("db:x did not drop a")
		}
		if _, ok := c.get("b"); !ok {
			t.Fatal("db:x dropped b")
		}
		if _, ok := c.get("old"); ok {
			t.Fatal("stored an expired answer")
		}
		testwait.Eventually(t, 10*time.Second, func() error {
			if _, ok := c.get("soon"); ok {
				return errors.New("an expired answer is still served")
			}
			return nil
		})
		c.invalidate([]string{allTag})
		if c.len() != 0 {
			t.Fatal("all did not flush")
		}
		gen, _ = c.generation()
		for i := range 1000 {
			c.put(gen, fmt.Sprint(i), i, time.Time{})
		}
		if n := c.len(); n > 100 || n == 0 {
			t.Fatalf("%d entries in a cache bounded at 100", n)
		}
		if _, ok := c.get("999"); !ok {
			t.Fatal("the newest answer was evicted")
		}
	})
}
