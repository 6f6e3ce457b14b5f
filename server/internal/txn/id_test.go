package txn

import (
	"strings"
	"testing"
	"time"
)

func TestIDsAndHops(t *testing.T) {
	key := deriveKey([]byte("secret one"))
	id := newID(key, "http://10.0.0.7:8080")
	if owner, ok := parseID(key, id); !ok || owner != "http://10.0.0.7:8080" {
		t.Fatalf("parseID(newID) = %q, %v", owner, ok)
	}
	if a, b := newID(key, "a:1"), newID(key, "a:1"); a == b {
		t.Fatal("two ids are equal")
	}
	// Another secret, a changed owner or a changed MAC: refused.
	if _, ok := parseID(deriveKey([]byte("secret two")), id); ok {
		t.Fatal("an id of another secret was accepted")
	}
	parts := strings.Split(strings.TrimPrefix(id, idPrefix), ".")
	forged := idPrefix + b64.EncodeToString([]byte("evil.example:80")) + "." + parts[1] + "." + parts[2]
	if _, ok := parseID(key, forged); ok {
		t.Fatal("an id with a changed owner was accepted")
	}
	for _, bad := range []string{"", "tx_", "tx_a.b", "tx_a.b.c", "nope." + id, id + "x"} {
		if _, ok := parseID(key, bad); ok {
			t.Fatalf("parseID(%q) accepted it", bad)
		}
	}
	now := time.Now()
	h := hopValue(key, id, now)
	if !checkHop(key, id, h, now.Add(time.Second)) {
		t.Fatal("a fresh hop was refused")
	}
	if checkHop(key, id, h, now.Add(2*hopMaxAge)) {
		t.Fatal("a stale hop was accepted")
	}
	if checkHop(key, id+"x", h, now) || checkHop(deriveKey([]byte("other")), id, h, now) || checkHop(key, id, "1.AAAA", now) {
		t.Fatal("a hop for another id, key or signature was accepted")
	}
}
