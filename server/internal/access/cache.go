package access

import (
	"sync"
	"time"
)

// cache is a bounded map of answers, each tagged with the store
// invalidation tags (store.AccessChannel) that drop it. It is safe for
// concurrent use.
//
// An answer read from the store may be stale by the time it is put: put
// takes the generation the caller read before its lookup and refuses the
// answer when any invalidation (or a listener outage) happened since, so
// an answer older than an invalidation is never cached.
type cache struct {
	mu      sync.Mutex
	entries map[string]*entry
	// gen counts invalidations and outages; see put.
	gen uint64
	// live says the replica is listening: the cache may be used.
	live       bool
	maxEntries int
	maxAge     time.Duration
	// hits, misses and invalidations count for Stats (under mu).
	hits, misses, invalidations int64
}

type entry struct {
	val     any
	tags    []string
	expires time.Time
}

func newCache(maxEntries int, maxAge time.Duration) *cache {
	return &cache{entries: map[string]*entry{}, maxEntries: maxEntries, maxAge: maxAge}
}

// generation returns the token a lookup passes to put, and whether the
// cache may be used now.
func (c *cache) generation() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.live
}

// get returns the live, unexpired answer for key.
func (c *cache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		c.misses++
		return nil, false
	}
	e := c.entries[key]
	if e == nil {
		c.misses++
		return nil, false
	}
	if !time.Now().Before(e.expires) {
		delete(c.entries, key)
		c.misses++
		return nil, false
	}
	c.hits++
	return e.val, true
}

// CacheStats are the access cache's size and counters since start.
type CacheStats struct {
	Entries                     int
	Hits, Misses, Invalidations int64
}

func (c *cache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: len(c.entries), Hits: c.hits, Misses: c.misses, Invalidations: c.invalidations}
}

// put stores val for key until expires (at most maxAge from now), unless
// the cache is down or the generation moved since gen.
func (c *cache) put(gen uint64, key string, val any, expires time.Time, tags ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.gen != gen {
		return
	}
	now := time.Now()
	if limit := now.Add(c.maxAge); expires.IsZero() || expires.After(limit) {
		expires = limit
	}
	if !now.Before(expires) {
		return
	}
	if len(c.entries) >= c.maxEntries {
		c.evict(now)
	}
	c.entries[key] = &entry{val: val, tags: tags, expires: expires}
}

// evict drops expired entries, then, when still full, arbitrary ones
// until a tenth of the room is free. c.mu is held.
func (c *cache) evict(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.maxEntries-c.maxEntries/10 {
			break
		}
		delete(c.entries, k) // map order is random enough
	}
}

// invalidate drops every entry carrying one of tags ("all" drops every
// entry).
func (c *cache) invalidate(tags []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.invalidations++
	for _, t := range tags {
		if t == allTag {
			clear(c.entries)
			return
		}
	}
	for k, e := range c.entries {
		if hasAny(e.tags, tags) {
			delete(c.entries, k)
		}
	}
}

func hasAny(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// setLive turns the cache on (after a LISTEN succeeded) or off (the
// listening connection is lost). Either way it is flushed: what was
// cached before an outage may have missed notifications.
func (c *cache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.invalidations++
	c.live = live
	clear(c.entries)
}

// len returns the number of entries (tests, metrics).
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
