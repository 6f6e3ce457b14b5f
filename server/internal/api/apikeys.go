package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// apiKeyJSON is one entry of GET /v2beta/api-key/: never the secret.
type apiKeyJSON struct {
	ID          string     `json:"id"`
	Label       string     `json:"label"`
	DateCreated time.Time  `json:"date_created"`
	LastUsed    *time.Time `json:"last_used"`
	// Current is true for the key this request was made with.
	Current bool `json:"current"`
}

// keyLabel names a key in lists: "key " and the start of its id (the id is
// not a secret; the key's plaintext is never stored).
func keyLabel(id string) string {
	if len(id) > 8 {
		id = id[:8]
	}
	return "key " + id
}

// listAPIKeys answers GET /v2beta/api-key/: the caller's live API keys.
func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	keys, err := s.st.ListUserAPIKeys(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	out := make([]apiKeyJSON, 0, len(keys))
	for _, k := range keys {
		j := apiKeyJSON{ID: k.ID, Label: keyLabel(k.ID), DateCreated: k.CreatedAt.UTC(), LastUsed: k.LastUsedAt,
			Current: p.Credential == authn.CredAPIKey && p.CredentialID == k.ID}
		if j.LastUsed != nil {
			u := j.LastUsed.UTC()
			j.LastUsed = &u
		}
		out = append(out, j)
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"api_keys": out})
	return nil
}

// revokeAPIKeyByID answers DELETE /v2beta/api-key/{id}: revokes one of the
// caller's keys by the id the list shows, so the secret need not be pasted.
func (s *Server) revokeAPIKeyByID(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	err := s.st.RevokeUserAPIKeyByID(r.Context(), authn.From(r.Context()).UserID, id)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.NotFound("no live API key of yours has the id %q; list your keys with GET /v2beta/api-key/", id)
	}
	if err != nil {
		return err
	}
	s.revoked([]string{id})
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// apiKeyRoutes registers the key list and revoke-by-id.
func (s *Server) apiKeyRoutes() {
	s.handle("GET /v2beta/api-key/", s.listAPIKeys, UserOnly)
	s.handle("DELETE /v2beta/api-key/{id}", s.revokeAPIKeyByID, UserOnly)
}
