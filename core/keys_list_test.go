//go:build !js

package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestE2EListAPIKeys lists a user's keys against a real bitd, revokes one by
// its id, and checks that the list never carries a key itself.
func TestE2EListAPIKeys(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	k0 := s.NewUser(t, bitdtest.UniqueName("lk"), "")
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(k0))
	if err != nil {
		t.Fatal(err)
	}
	k1, err := c.CreateAPIKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("listed %d keys, want 2: %+v", len(keys), keys)
	}
	var current, other core.APIKeyInfo
	for _, k := range keys {
		if k.ID == "" || k.Label == "" || k.DateCreated.IsZero() || strings.Contains(k.ID+k.Label, "v2_") {
			t.Errorf("entry %+v", k)
		}
		if k.Current {
			current = k
		} else {
			other = k
		}
	}
	if current.ID == "" || other.ID == "" {
		t.Fatalf("want one current key and one other: %+v", keys)
	}
	if current.LastUsed == nil {
		t.Errorf("the key in use has no last_used: %+v", current)
	}
	if err := c.RevokeAPIKeyByID(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	c1, err := core.NewClient(s.Endpoint, core.WithAPIKey(k1.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Account(ctx); !errors.Is(err, core.ErrUnauthorized) {
		t.Errorf("the key revoked by id still works: %v", err)
	}
	if keys, err := c.ListAPIKeys(ctx); err != nil || len(keys) != 1 || keys[0].ID != current.ID {
		t.Errorf("after revoking %s: %+v %v", other.ID, keys, err)
	}
	if err := c.RevokeAPIKeyByID(ctx, other.ID); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("revoking it again: %v, want ErrNotFound", err)
	}
	if err := c.RevokeAPIKeyByID(ctx, ""); err == nil {
		t.Error("an empty id was accepted")
	}
}
