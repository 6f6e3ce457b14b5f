package core

import (
	"context"
	"errors"
	"strings"

	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// Collaborator roles: what a collaborator may do on a shared database.
const (
	// RoleAdmin may read, write, change the database and manage its
	// collaborators.
	RoleAdmin = "ADMIN"
	// RoleWriter may read and write.
	RoleWriter = "WRITER"
	// RoleReader may read.
	RoleReader = "READER"
)

// Collaborator is a user a database is shared with, and their role on it.
type Collaborator struct {
	// Username is the user's name.
	Username string `json:"username"`
	// Role is ADMIN, WRITER or READER.
	Role string `json:"role"`
}

func collaboratorPath(database, user string) (string, error) {
	p, err := escapeDB(database)
	if err != nil {
		return "", err
	}
	return apiPrefix + "/db/" + p + "/collaborators/" + url.PathEscape(user), nil
}

// ListCollaborators returns the users the database "account/dbname" is
// shared with, by name. It needs OWNER or ADMIN on the database.
func (c *Client) ListCollaborators(ctx context.Context, database string) ([]Collaborator, error) {
	p, err := collaboratorPath(database, "")
	if err != nil {
		return nil, err
	}
	var ans struct {
		Collaborators []Collaborator `json:"collaborators"`
	}
	if _, err := c.do(ctx, &request{method: "GET", path: p}, &ans); err != nil {
		return nil, err
	}
	if ans.Collaborators == nil {
		ans.Collaborators = []Collaborator{}
	}
	return ans.Collaborators, nil
}

// ShareDatabase shares the database "account/dbname" with user as role
// (RoleAdmin, RoleWriter or RoleReader), or changes the role of a user it
// is shared with already. It needs OWNER or ADMIN on the database; a user
// that does not exist is ErrNotFound, and sharing with yourself or an owner
// of the database is refused. The change reaches the user's next request;
// their open wire sessions on the database with the old role are ended.
func (c *Client) ShareDatabase(ctx context.Context, database, user, role string) (*Collaborator, error) {
	if user == "" {
		return nil, errors.New("core: ShareDatabase: no user name given")
	}
	if role == "" {
		return nil, errors.New("core: ShareDatabase: no role given (ADMIN, WRITER or READER)")
	}
	p, err := collaboratorPath(database, user)
	if err != nil {
		return nil, err
	}
	var col Collaborator
	body := map[string]string{"role": strings.ToUpper(role)}
	if _, err := c.do(ctx, &request{method: "PUT", path: p, body: body}, &col); err != nil {
		return nil, err
	}
	return &col, nil
}

// RemoveCollaborator stops sharing the database "account/dbname" with
// user: their next request is refused and their open wire sessions on it
// are ended. A user it is not shared with is ErrNotFound.
func (c *Client) RemoveCollaborator(ctx context.Context, database, user string) error {
	if user == "" {
		return errors.New("core: RemoveCollaborator: no user name given")
	}
	p, err := collaboratorPath(database, user)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, &request{method: "DELETE", path: p}, nil)
	return err
}
