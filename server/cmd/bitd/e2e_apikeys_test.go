package main

import (
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestAPIKeyList lists a user's keys (never a secret), marks the key in use,
// revokes one by the id the list shows, and keeps other users' keys apart.
func TestAPIKeyList(t *testing.T) {
	t.Parallel()
	s := bitdtest.Start(t)
	E := s.Endpoint
	key := s.NewUser(t, "kim", "")
	other := s.NewUser(t, "lou", "")
	k2 := call(t, "POST", E+"/v2beta/api-key/", key, nil).str("api_key")
	want(t, call(t, "GET", E+"/v2beta/db/", k2, nil), 200, "") // records last use

	list := func(cred string) []map[string]any {
		t.Helper()
		r := call(t, "GET", E+"/v2beta/api-key/", cred, nil)
		want(t, r, 200, "")
		for _, secret := range []string{key, k2, other} {
			if strings.Contains(string(r.Raw), secret) {
				t.Fatalf("the key list shows a secret: %.40s…", r.Raw)
			}
		}
		items, _ := r.Body["api_keys"].([]any)
		out := make([]map[string]any, 0, len(items))
		for _, it := range items {
			out = append(out, it.(map[string]any))
		}
		return out
	}
	keys := list(key)
	if len(keys) != 2 {
		t.Fatalf("kim has %d keys listed, want 2: %v", len(keys), keys)
	}
	if keys[0]["current"] != true || keys[1]["current"] != false {
		t.Fatalf("current flags: %v", keys)
	}
	if keys[1]["last_used"] == nil || keys[0]["date_created"] == "" || !strings.HasPrefix(keys[0]["label"].(string), "key ") {
		t.Fatalf("fields: %v", keys)
	}
	if n := len(list(other)); n != 1 {
		t.Fatalf("lou sees %d keys, want 1", n)
	}

	id2 := keys[1]["id"].(string)
	want(t, call(t, "DELETE", E+"/v2beta/api-key/"+id2, other, nil), 404, "not_found") // not lou's
	want(t, call(t, "GET", E+"/v2beta/db/", k2, nil), 200, "")
	want(t, call(t, "DELETE", E+"/v2beta/api-key/"+id2, key, nil), 200, "")
	want(t, call(t, "GET", E+"/v2beta/db/", k2, nil), 401, "unauthorized")
	want(t, call(t, "DELETE", E+"/v2beta/api-key/"+id2, key, nil), 404, "not_found") // already revoked
	if keys := list(key); len(keys) != 1 || keys[0]["id"] == id2 {
		t.Fatalf("after revoking: %v", keys)
	}
}
