//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// storageCache is a core.TokenCache over window.sessionStorage or
// window.localStorage. Entries are JSON under "bitkit.token:" + key; the key
// names an endpoint and a user, never a password. An entry that cannot be
// read is treated as missing. It is safe for concurrent use (JS is single
// threaded and every call is synchronous).
type storageCache struct {
	name string // "sessionStorage" or "localStorage"
}

const storagePrefix = "bitkit.token:"

func (s storageCache) storage() (js.Value, error) {
	st := js.Global().Get(s.name)
	if st.Type() != js.TypeObject {
		return js.Null(), fmt.Errorf("bitkit: %s is not available in this context; use tokenCache \"none\"", s.name)
	}
	return st, nil
}

// Get implements core.TokenCache.
func (s storageCache) Get(_ context.Context, key string) (core.CachedToken, bool, error) {
	st, err := s.storage()
	if err != nil {
		return core.CachedToken{}, false, err
	}
	v := st.Call("getItem", storagePrefix+key)
	if v.Type() != js.TypeString {
		return core.CachedToken{}, false, nil
	}
	var t core.CachedToken
	if err := jsonx.Unmarshal([]byte(v.String()), &t); err != nil || t.AccessToken == "" {
		return core.CachedToken{}, false, nil
	}
	return t, true, nil
}

// Put implements core.TokenCache.
func (s storageCache) Put(_ context.Context, key string, t core.CachedToken) error {
	st, err := s.storage()
	if err != nil {
		return err
	}
	b, err := jsonx.Marshal(t)
	if err != nil {
		return fmt.Errorf("bitkit: encoding the token for %s: %w", s.name, err)
	}
	st.Call("setItem", storagePrefix+key, string(b))
	return nil
}

// Delete implements core.TokenCache.
func (s storageCache) Delete(_ context.Context, key string) error {
	st, err := s.storage()
	if err != nil {
		return err
	}
	st.Call("removeItem", storagePrefix+key)
	return nil
}
