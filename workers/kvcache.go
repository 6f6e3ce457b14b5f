//go:build js && wasm

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/workers/handler"
	"github.com/syumai/workers/cloudflare"
)

// kvTokenCache is the core.TokenCache of a username/password Worker: the
// access and refresh tokens (never the password) as JSON in the KV
// namespace bound as handler.EnvTokenKV, under "bitkit-token/" and the
// SHA-256 of core's key (which names the endpoint and the user), expiring
// with the tokens. KV has no locks: two instances refreshing at once may
// both trade the refresh token; the loser logs in again.
type kvTokenCache struct{ ns *cloudflare.KVNamespace }

// tokenCache is handler.Config.TokenCache: the KV namespace of this request.
func tokenCache() (core.TokenCache, error) {
	ns, err := cloudflare.NewKVNamespace(handler.EnvTokenKV)
	if err != nil {
		return nil, err
	}
	return kvTokenCache{ns: ns}, nil
}

func kvKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return "bitkit-token/" + hex.EncodeToString(h[:])
}

func (c kvTokenCache) Get(_ context.Context, key string) (core.CachedToken, bool, error) {
	var t core.CachedToken
	s, err := c.ns.GetString(kvKey(key), nil)
	if err != nil {
		return t, false, err
	}
	// A missing key comes back as JS null, which syumai's GetString
	// stringifies; what this cache writes is always a JSON object.
	if !strings.HasPrefix(s, "{") {
		return t, false, nil
	}
	if err := jsonx.Unmarshal([]byte(s), &t); err != nil {
		return t, false, nil // unreadable: log in again and overwrite it
	}
	return t, true, nil
}

func (c kvTokenCache) Put(_ context.Context, key string, t core.CachedToken) error {
	b, err := jsonx.Marshal(t)
	if err != nil {
		return err
	}
	until := t.Expiry
	if t.RefreshExpiry.After(until) {
		until = t.RefreshExpiry
	}
	// KV's shortest expiration is 60 s; an expired token is replaced anyway.
	ttl := max(60, int(time.Until(until).Seconds())+1)
	return c.ns.PutString(kvKey(key), string(b), &cloudflare.KVNamespacePutOptions{ExpirationTTL: ttl})
}

func (c kvTokenCache) Delete(_ context.Context, key string) error {
	return c.ns.Delete(kvKey(key))
}
