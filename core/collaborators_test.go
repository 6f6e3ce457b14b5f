//go:build !js

package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestCollaboratorsE2E shares a database through core against a real bitd:
// the collaborator sees it with their role, their writes follow the role
// (PostgreSQL's permission error for a READER), a WRITER cannot manage
// collaborators, and removal hides the database again.
func TestCollaboratorsE2E(t *testing.T) {
	s := bitdtest.Start(t)
	ctx := t.Context()
	owner, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	guest, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.NewUser(t, "core_guest", "")))
	if err != nil {
		t.Fatal(err)
	}
	s.NewUser(t, "core_third", "")
	db := s.User + "/sharedcore"
	if _, err := owner.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: "sharedcore"}); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Query(ctx, db, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}

	if cs, err := owner.ListCollaborators(ctx, db); err != nil || len(cs) != 0 {
		t.Fatalf("no collaborators yet: %v %v", cs, err)
	}
	_, err = owner.ShareDatabase(ctx, db, "no_such_user", core.RoleReader)
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "no_such_user") {
		t.Fatalf("sharing with an unknown user: %v", err)
	}
	if _, err := owner.ShareDatabase(ctx, db, s.User, core.RoleReader); !errors.Is(err, core.ErrBadRequest) {
		t.Fatalf("sharing with yourself: %v", err)
	}
	if _, err := guest.Query(ctx, db, "SELECT 1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("before sharing: %v", err)
	}

	col, err := owner.ShareDatabase(ctx, db, "core_guest", "reader")
	if err != nil || col.Username != "core_guest" || col.Role != core.RoleReader {
		t.Fatalf("share: %+v %v", col, err)
	}
	d, err := guest.GetDatabase(ctx, db)
	if err != nil || d.Role != core.RoleReader {
		t.Fatalf("the collaborator's view: %+v %v", d, err)
	}
	_, err = guest.Query(ctx, db, "INSERT INTO t VALUES (1)")
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.SQLState != "42501" {
		t.Fatalf("READER's INSERT: want PostgreSQL's permission error, got %v", err)
	}

	if _, err := owner.ShareDatabase(ctx, db, "core_guest", core.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if _, err := guest.Query(ctx, db, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("WRITER's INSERT: %v", err)
	}
	if _, err := guest.ShareDatabase(ctx, db, "core_third", core.RoleReader); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("a WRITER sharing: %v", err)
	}
	if _, err := guest.ListCollaborators(ctx, db); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("a WRITER listing: %v", err)
	}
	cs, err := owner.ListCollaborators(ctx, db)
	if err != nil || len(cs) != 1 || cs[0] != (core.Collaborator{Username: "core_guest", Role: core.RoleWriter}) {
		t.Fatalf("list: %+v %v", cs, err)
	}

	if err := owner.RemoveCollaborator(ctx, db, "core_guest"); err != nil {
		t.Fatal(err)
	}
	if _, err := guest.Query(ctx, db, "SELECT 1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("after removal: %v", err)
	}
	if err := owner.RemoveCollaborator(ctx, db, "core_guest"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
	if _, err := owner.ListCollaborators(ctx, "no-slash"); err == nil {
		t.Fatal("a database name without account was accepted")
	}
}
