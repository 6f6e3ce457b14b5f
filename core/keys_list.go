package core

import (
	"context"
	"errors"
	"time"

	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// APIKeyInfo describes one of the caller's API keys as GET /v2beta/api-key/
// lists it. It never holds the key itself: the server keeps only a hash.
type APIKeyInfo struct {
	// ID names the key in lists and in RevokeAPIKeyByID; it is not a secret.
	ID string `json:"id"`
	// Label is a name for people ("key 1a2b3c4d").
	Label string `json:"label"`
	// DateCreated is when the key was made; LastUsed when it last
	// authenticated a request (nil when never).
	DateCreated time.Time  `json:"date_created"`
	LastUsed    *time.Time `json:"last_used"`
	// Current is true for the key the listing request was made with.
	Current bool `json:"current"`
}

// ListAPIKeys returns the caller's live API keys, oldest first as the
// server orders them. It needs a user's credentials (not a service
// account's).
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKeyInfo, error) {
	var ans struct {
		APIKeys []APIKeyInfo `json:"api_keys"`
	}
	if _, err := c.do(ctx, &request{method: "GET", path: apiPrefix + "/api-key/"}, &ans); err != nil {
		return nil, err
	}
	if ans.APIKeys == nil {
		ans.APIKeys = []APIKeyInfo{}
	}
	return ans.APIKeys, nil
}

// RevokeAPIKeyByID revokes one of the caller's API keys by the ID that
// ListAPIKeys shows, so that the key itself need not be at hand. An ID that
// names no live key of the caller's is ErrNotFound.
func (c *Client) RevokeAPIKeyByID(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("core: RevokeAPIKeyByID: no key ID given (ListAPIKeys shows them)")
	}
	_, err := c.do(ctx, &request{method: "DELETE", path: apiPrefix + "/api-key/" + url.PathEscape(id)}, nil)
	return err
}
