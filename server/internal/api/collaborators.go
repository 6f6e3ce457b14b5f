package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// Collaborators are users given a role (ADMIN, WRITER or READER) on one
// database outside its account. The database's OWNERs and ADMINs (account
// members or ADMIN collaborators) list and manage them; every change is
// announced to the access layer, so the collaborator's next HTTP request
// and the wire sessions open for them follow it at once.

type collaboratorJSON struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

type setCollaboratorReq struct {
	Role string `json:"role"`
}

func (s *Server) collaboratorRoutes() {
	s.handle("GET /v2beta/db/{account}/{db}/collaborators/", s.listCollaborators, UserOnly)
	s.handle("PUT /v2beta/db/{account}/{db}/collaborators/{user}", s.setCollaborator, UserOnly)
	s.handle("DELETE /v2beta/db/{account}/{db}/collaborators/{user}", s.removeCollaborator, UserOnly)
}

// manageableDB finds the database in the path and checks the caller may
// manage its collaborators.
func (s *Server) manageableDB(r *http.Request, action string) (*store.Database, error) {
	d, err := s.lookup(r)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(d, action); err != nil {
		return nil, err
	}
	return d, nil
}

// collaboratorUser finds the user named in the path: 404 naming them when
// there is none.
func (s *Server) collaboratorUser(r *http.Request) (*store.User, error) {
	name := r.PathValue("user")
	if err := access.ValidateAccountName(name); err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			ae.Message = strings.Replace(ae.Message, "account name", "user name", 1)
		}
		return nil, err
	}
	u, err := s.st.UserByName(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("user %q not found: check the spelling of the user name", name)
	}
	return u, err
}

func (s *Server) listCollaborators(w http.ResponseWriter, r *http.Request) error {
	d, err := s.manageableDB(r, "listing collaborators")
	if err != nil {
		return err
	}
	cs, err := s.st.ListCollaborators(r.Context(), d.ID)
	if err != nil {
		return err
	}
	out := make([]collaboratorJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, collaboratorJSON{Username: c.UserName, Role: c.Role})
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"collaborators": out})
	return nil
}

func (s *Server) setCollaborator(w http.ResponseWriter, r *http.Request) error {
	d, err := s.manageableDB(r, "managing collaborators")
	if err != nil {
		return err
	}
	var req setCollaboratorReq
	if err := DecodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Role == "" {
		return missing("role")
	}
	role := strings.ToUpper(req.Role)
	switch role {
	case "ADMIN", "WRITER", "READER":
	case "OWNER":
		e := apierr.BadRequest("invalid_field", "a collaborator cannot be OWNER: give ADMIN, WRITER or READER")
		e.Field = "role"
		return e
	default:
		e := apierr.BadRequest("invalid_field", "role %q is not a collaborator role: give ADMIN, WRITER or READER", req.Role)
		e.Field = "role"
		return e
	}
	u, err := s.collaboratorUser(r)
	if err != nil {
		return err
	}
	if err := s.checkShareable(r, d, u); err != nil {
		return err
	}
	if err := s.st.AddCollaborator(r.Context(), d.ID, u.ID, role); err != nil {
		return err
	}
	s.accessChanged(d.ID)
	s.log.InfoContext(r.Context(), "collaborator set", "database", d.FullName(), "user", u.Name, "role", role)
	apierr.WriteJSON(w, http.StatusOK, collaboratorJSON{Username: u.Name, Role: role})
	return nil
}

// checkShareable refuses sharing d with the caller or with an owner of d's
// account (their role cannot be changed this way).
func (s *Server) checkShareable(r *http.Request, d *store.Database, u *store.User) error {
	if p := authn.From(r.Context()); p != nil && p.UserID == u.ID {
		return apierr.BadRequest("invalid_user", "you cannot share %s with yourself: name another user", d.FullName())
	}
	owner, err := s.st.IsAccountOwner(r.Context(), d.AccountID, u.ID)
	if err != nil {
		return err
	}
	if owner {
		return apierr.BadRequest("invalid_user", "%s owns %s (an OWNER of account %s) and has every permission on it already: name another user",
			u.Name, d.FullName(), d.AccountName)
	}
	return nil
}

func (s *Server) removeCollaborator(w http.ResponseWriter, r *http.Request) error {
	d, err := s.manageableDB(r, "managing collaborators")
	if err != nil {
		return err
	}
	u, err := s.collaboratorUser(r)
	if err != nil {
		return err
	}
	err = s.st.RemoveCollaborator(r.Context(), d.ID, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.NotFound("user %q is not a collaborator on %s: list the database's collaborators to see who is", u.Name, d.FullName())
	}
	if err != nil {
		return err
	}
	s.accessChanged(d.ID)
	s.log.InfoContext(r.Context(), "collaborator removed", "database", d.FullName(), "user", u.Name)
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// accessChanged has this replica's wire sessions on databaseID re-checked
// at once (other replicas follow the store's notification).
func (s *Server) accessChanged(databaseID string) {
	if s.o.OnAccessChanged != nil {
		s.o.OnAccessChanged(databaseID)
	}
}
