package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

func (s *Server) account(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"account": map[string]string{"id": p.AccountID, "name": p.AccountName}})
	return nil
}

func (s *Server) accountIDByName(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	name := r.URL.Query().Get("account_name")
	if name == "" {
		return missing("account_name")
	}
	notFound := apierr.NotFound("account %q not found, or you are not a member", name)
	if strings.EqualFold(name, p.AccountName) {
		apierr.WriteJSON(w, http.StatusOK, map[string]string{"account_id": p.AccountID})
		return nil
	}
	if p.Kind == authn.KindServiceAccount || access.ValidateAccountName(name) != nil {
		return notFound
	}
	acc, err := s.st.AccountByName(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	role, err := s.st.MemberRole(r.Context(), acc.ID, p.UserID)
	if err != nil {
		return err
	}
	if role == "" {
		return notFound
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]string{"account_id": acc.ID})
	return nil
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	key, err := s.st.CreateUserAPIKey(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]string{"api_key": key, "username": p.Name})
	return nil
}

func (s *Server) revokeAPIKeys(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	var ids []string
	if key := r.URL.Query().Get("api_key"); key != "" {
		id, err := s.st.RevokeAPIKey(r.Context(), key, p.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.NotFound("no live API key of yours matches the api_key given")
		}
		if err != nil {
			return err
		}
		ids = []string{id}
	} else {
		var err error
		if ids, err = s.st.RevokeUserAPIKeys(r.Context(), p.UserID); err != nil {
			return err
		}
	}
	s.revoked(ids)
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) revoked(ids []string) {
	if s.o.OnRevokeCredential == nil {
		return
	}
	for _, id := range ids {
		s.o.OnRevokeCredential(id)
	}
}

type saDatabaseJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type serviceAccountJSON struct {
	ID               string           `json:"id"`
	Name             string           `json:"name"`
	DateCreated      time.Time        `json:"date_created"`
	Role             string           `json:"role"`
	Databases        []saDatabaseJSON `json:"databases"`
	TokenCount       int              `json:"token_count"`
	ActiveTokenCount int              `json:"active_token_count"`
}

func saJSON(sa store.ServiceAccount) serviceAccountJSON {
	out := serviceAccountJSON{ID: sa.ID, Name: sa.Name, DateCreated: sa.CreatedAt.UTC(), Role: sa.Role,
		Databases: make([]saDatabaseJSON, 0, len(sa.Databases)), TokenCount: sa.TokenCount, ActiveTokenCount: sa.ActiveTokens}
	for _, d := range sa.Databases {
		out.Databases = append(out.Databases, saDatabaseJSON{d.ID, d.FullName})
	}
	return out
}

func (s *Server) listServiceAccounts(w http.ResponseWriter, r *http.Request) error {
	sas, err := s.st.ServiceAccountsForUser(r.Context(), authn.From(r.Context()).UserID, "")
	if err != nil {
		return err
	}
	out := make([]serviceAccountJSON, 0, len(sas))
	for _, sa := range sas {
		out = append(out, saJSON(sa))
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"service_accounts": out})
	return nil
}

// serviceAccount finds {id} among the service accounts the user manages
// (404 otherwise, never 403, so ids of others don't leak).
func (s *Server) serviceAccount(r *http.Request) (*store.ServiceAccount, error) {
	id := r.PathValue("id")
	sas, err := s.st.ServiceAccountsForUser(r.Context(), authn.From(r.Context()).UserID, id)
	if err != nil {
		return nil, err
	}
	if len(sas) == 0 {
		return nil, apierr.NotFound("service account %q not found", id)
	}
	return &sas[0], nil
}

func (s *Server) getServiceAccount(w http.ResponseWriter, r *http.Request) error {
	sa, err := s.serviceAccount(r)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, saJSON(*sa))
	return nil
}

type createSAReq struct {
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	Databases []string `json:"databases"`
	Account   string   `json:"account"`
}

func (s *Server) createServiceAccount(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	var req createSAReq
	if err := DecodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Name == "" {
		return missing("name")
	}
	if len(req.Name) > 64 {
		return apierr.BadRequest("invalid_name", "the service account name is %d characters long: the maximum is 64", len(req.Name))
	}
	role := strings.ToUpper(req.Role)
	if role == "" {
		role = "READER"
	}
	if role != "ADMIN" && role != "WRITER" && role != "READER" {
		return apierr.BadRequest("invalid_field", "role must be ADMIN, WRITER or READER, not %q", req.Role)
	}
	account := req.Account
	if account == "" {
		account = r.Header.Get("X-Bitkit-Account")
	}
	acc, err := s.accountForWrite(r.Context(), p, account)
	if err != nil {
		return err
	}
	for _, n := range req.Databases {
		a, _, err := access.SplitFullName(n, acc.Name)
		if err != nil {
			return err
		}
		if !strings.EqualFold(a, acc.Name) {
			return apierr.BadRequest("invalid_field", "database %q is not in account %q: a service account only reaches databases of its own account", n, acc.Name)
		}
	}
	ids, err := s.st.DatabaseIDsInAccount(r.Context(), acc.ID, req.Databases)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.NotFound("%s not found in account %q", strings.TrimPrefix(err.Error(), store.ErrNotFound.Error()+": "), acc.Name)
	}
	if err != nil {
		return err
	}
	id, err := s.st.CreateServiceAccount(r.Context(), acc.ID, p.UserID, req.Name, role, ids)
	if err != nil {
		return err
	}
	sas, err := s.st.ServiceAccountsForUser(r.Context(), p.UserID, id)
	if err != nil || len(sas) == 0 {
		return errors.Join(err, errors.New("service account vanished after creation"))
	}
	apierr.WriteJSON(w, http.StatusCreated, saJSON(sas[0]))
	return nil
}

func (s *Server) createServiceAccountKey(w http.ResponseWriter, r *http.Request) error {
	sa, err := s.serviceAccount(r)
	if err != nil {
		return err
	}
	key, err := s.st.CreateServiceAccountAPIKey(r.Context(), sa.ID)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]string{"api_key": key, "username": sa.Name})
	return nil
}

func (s *Server) revokeServiceAccountKeys(w http.ResponseWriter, r *http.Request) error {
	sa, err := s.serviceAccount(r)
	if err != nil {
		return err
	}
	ids, err := s.st.RevokeServiceAccountAPIKeys(r.Context(), sa.ID)
	if err != nil {
		return err
	}
	s.revoked(ids)
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}
