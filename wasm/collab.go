//go:build js && wasm

package main

import (
	"context"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
)

// listCollaborators implements client.listCollaborators(db).
func (jc *jsClient) listCollaborators(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "listCollaborators: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	cs, err := jc.c.ListCollaborators(ctx, db)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		cs = []core.Collaborator{}
	}
	return toJS(cs), nil
}

// shareDatabase implements client.shareDatabase(db, user, role).
func (jc *jsClient) shareDatabase(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "shareDatabase: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	user, err := reqString(a, 1, "shareDatabase: the user name")
	if err != nil {
		return nil, err
	}
	role, err := reqString(a, 2, "shareDatabase: the role (\"ADMIN\", \"WRITER\" or \"READER\")")
	if err != nil {
		return nil, err
	}
	c, err := jc.c.ShareDatabase(ctx, db, user, role)
	if err != nil {
		return nil, err
	}
	return toJS(c), nil
}

// removeCollaborator implements client.removeCollaborator(db, user).
func (jc *jsClient) removeCollaborator(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "removeCollaborator: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	user, err := reqString(a, 1, "removeCollaborator: the user name")
	if err != nil {
		return nil, err
	}
	return js.Undefined(), jc.c.RemoveCollaborator(ctx, db, user)
}
