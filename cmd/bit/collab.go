package main

import (
	"context"
	"strings"

	"github.com/bitkit-dev/bitkit/core"
)

// collaboratorCommands are bit db share, unshare and collaborators.
func collaboratorCommands() []*command {
	return []*command{
		{
			name:     "share",
			synopsis: "-d NAME USER [--role ADMIN|WRITER|READER]",
			summary:  "share a database with another user, or change their role on it",
			long: `USER gets the role on the database (READER unless --role says otherwise):
READER may read, WRITER may also write, ADMIN may also change the database
and manage who it is shared with. Sharing needs OWNER or ADMIN on the
database. The user sees the database in their 'bit db list' at once.`,
			maxArgs: 1,
			flags: func(fs *flagSet) {
				dbFlag(fs)
				fs.add(&option{names: []string{"-r", "--role"}, metavar: "ROLE", help: "ADMIN, WRITER or READER (default READER)"})
			},
			run: runDBShare,
		},
		{
			name:     "unshare",
			synopsis: "-d NAME USER",
			summary:  "stop sharing a database with a user",
			long: `The user's next request on the database is refused, and their open
connections to it through bitd's PostgreSQL port are ended.`,
			maxArgs: 1,
			flags:   dbFlag,
			run:     runDBUnshare,
		},
		{
			name:     "collaborators",
			synopsis: "-d NAME",
			summary:  "list the users a database is shared with, and their roles",
			maxArgs:  1,
			flags:    dbFlag,
			run:      runDBCollaborators,
		},
	}
}

// collabArgs are -d (completed to account/db) and the USER argument.
func (inv *invocation) collabArgs(ctx context.Context) (c *core.Client, db, user string, err error) {
	db = inv.str("--database")
	if db == "" {
		return nil, "", "", usagef(inv.cmd, "missing -d/--database NAME (account/db, or db in your own account)")
	}
	if len(inv.args) != 1 || inv.args[0] == "" {
		return nil, "", "", usagef(inv.cmd, "missing USER: the name of the user (for example: %s -d %s alice)", inv.cmd.fullName(), db)
	}
	if c, err = inv.tabularClient(); err != nil {
		return nil, "", "", err
	}
	if db, err = fullDBName(ctx, c, inv, db); err != nil {
		return nil, "", "", err
	}
	return c, db, inv.args[0], nil
}

func collaboratorTable(db string, cs []core.Collaborator) func() tabular {
	return func() tabular {
		t := tabular{cols: []string{"database", "username", "role"}}
		for _, c := range cs {
			t.rows = append(t.rows, []any{db, c.Username, c.Role})
		}
		return t
	}
}

func runDBShare(ctx context.Context, inv *invocation) error {
	role := strings.ToUpper(inv.str("--role"))
	switch role {
	case "":
		role = core.RoleReader
	case core.RoleAdmin, core.RoleWriter, core.RoleReader:
	default:
		return usagef(inv.cmd, "--role takes ADMIN, WRITER or READER, not %q", inv.str("--role"))
	}
	c, db, user, err := inv.collabArgs(ctx)
	if err != nil {
		return err
	}
	col, err := c.ShareDatabase(ctx, db, user, role)
	if err != nil {
		return err
	}
	return inv.emit(map[string]any{"database": db, "username": col.Username, "role": col.Role},
		collaboratorTable(db, []core.Collaborator{*col}))
}

func runDBUnshare(ctx context.Context, inv *invocation) error {
	c, db, user, err := inv.collabArgs(ctx)
	if err != nil {
		return err
	}
	if err := c.RemoveCollaborator(ctx, db, user); err != nil {
		return err
	}
	return inv.emit(map[string]any{"database": db, "unshared": user}, func() tabular {
		return tabular{cols: []string{"database", "unshared"}, rows: [][]any{{db, user}}}
	})
}

func runDBCollaborators(ctx context.Context, inv *invocation) error {
	c, name, err := inv.dbTarget(ctx)
	if err != nil {
		return err
	}
	cs, err := c.ListCollaborators(ctx, name)
	if err != nil {
		return err
	}
	return inv.emit(map[string]any{"database": name, "collaborators": cs}, collaboratorTable(name, cs))
}
