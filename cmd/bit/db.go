package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/core"
)

func dbFlag(fs *flagSet) {
	fs.add(&option{names: []string{"-d", "--database", "--db"}, metavar: "NAME",
		help: "database: account/db, or db for one in your own account (or --account's)"})
}

func dbCommand() *command {
	g := group("db", "list, create, inspect, update, delete and share databases",
		&command{
			name:    "list",
			summary: "list the databases you can access",
			run:     runDBList,
		},
		&command{
			name:     "create",
			synopsis: "-n NAME [-p|--public] [--storage-limit BYTES]",
			summary:  "create a database (private unless -p/--public)",
			long: `NAME is db (in your own account, or --account's) or account/db.
For python-bitdotio compatibility, -p followed by true or false is is_private:
"-p false" creates a public database and "-p true" a private one.`,
			maxArgs: 1,
			flags: func(fs *flagSet) {
				fs.add(&option{names: []string{"-n", "--name"}, metavar: "NAME", help: "database name: db or account/db (may also be given as the argument)"})
				fs.add(&option{names: []string{"--public"}, help: "make the database public (readable by anyone); default private"})
				fs.add(&option{names: []string{"-p"}, metavar: "[true|false]", optional: isBoolLiteral,
					help: "alone: same as --public; with a value: python-bitdotio's -p IS_PRIVATE\n(-p false makes it public, -p true private)"})
				fs.add(&option{names: []string{"--is_private", "--is-private"}, metavar: "true|false", help: "python-bitdotio's spelling: whether the database is private"})
				fs.add(&option{names: []string{"--storage-limit"}, metavar: "BYTES", help: "storage limit in bytes (default: the server's)"})
			},
			run: runDBCreate,
		},
		&command{
			name:     "info",
			synopsis: "-d NAME",
			summary:  "show one database",
			maxArgs:  1,
			flags:    dbFlag,
			run:      runDBInfo,
		},
		&command{
			name:     "update",
			synopsis: "-d NAME [-n NEWNAME] [-p true|false | --public true|false] [--storage-limit BYTES]",
			summary:  "rename a database or change its visibility or storage limit",
			long: `-p is python-bitdotio's is_private: "-p true" makes the database private and
"-p false" public. --public true|false says the same the other way round.`,
			maxArgs: 1,
			flags: func(fs *flagSet) {
				dbFlag(fs)
				fs.add(&option{names: []string{"-n", "--name"}, metavar: "NEWNAME", help: "new name (the part after account/)"})
				fs.add(&option{names: []string{"-p", "--is_private", "--is-private"}, metavar: "true|false", help: "make the database private (true) or public (false)"})
				fs.add(&option{names: []string{"--public"}, metavar: "true|false", help: "make the database public (true) or private (false)"})
				fs.add(&option{names: []string{"--storage-limit"}, metavar: "BYTES", help: "new storage limit in bytes"})
			},
			run: runDBUpdate,
		},
		&command{
			name:     "delete",
			synopsis: "-d NAME [-y|--yes]",
			summary:  "delete a database and all its data (the name stays reserved for the server's --name-reservation, 30 days by default)",
			long: `On a terminal, bit asks for confirmation first (--yes skips the question).
Without a terminal on stdin (scripts, CI) it does not ask.`,
			maxArgs: 1,
			flags: func(fs *flagSet) {
				dbFlag(fs)
				fs.add(&option{names: []string{"-y", "--yes"}, help: "delete without asking for confirmation"})
			},
			run: runDBDelete,
		},
	)
	for _, c := range collaboratorCommands() {
		c.parent = g
		g.subs = append(g.subs, c)
	}
	return g
}

// dbTarget is dbArg completed to account/db, with the client that resolved
// it.
func (inv *invocation) dbTarget(ctx context.Context) (*core.Client, string, error) {
	name, err := inv.dbArg()
	if err != nil {
		return nil, "", err
	}
	c, err := inv.tabularClient()
	if err != nil {
		return nil, "", err
	}
	if name, err = fullDBName(ctx, c, inv, name); err != nil {
		return nil, "", err
	}
	return c, name, nil
}

// dbArg is -d, or the single positional argument.
func (inv *invocation) dbArg() (string, error) {
	d := inv.str("--database")
	if len(inv.args) == 1 {
		if d != "" && d != inv.args[0] {
			return "", usagef(inv.cmd, "database given twice: -d %q and argument %q", d, inv.args[0])
		}
		d = inv.args[0]
	}
	if d == "" {
		return "", usagef(inv.cmd, "missing -d/--database NAME (account/db, or db in your own account)")
	}
	return d, nil
}

func databaseTable(dbs []core.Database) func() tabular {
	return func() tabular {
		t := tabular{cols: []string{"name", "id", "role", "is_private", "storage_usage_bytes", "storage_limit_bytes", "date_created"}}
		for _, d := range dbs {
			t.rows = append(t.rows, []any{d.Name, d.ID, d.Role, d.IsPrivate, d.StorageUsageBytes, d.StorageLimitBytes, d.DateCreated})
		}
		return t
	}
}

func runDBList(ctx context.Context, inv *invocation) error {
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	dbs, err := c.ListDatabases(ctx)
	if err != nil {
		return err
	}
	if dbs == nil {
		dbs = []core.Database{}
	}
	return inv.emit(map[string]any{"databases": dbs}, databaseTable(dbs))
}

func parseBytes(inv *invocation, flag, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, usagef(inv.cmd, "%s takes a positive number of bytes, not %q", flag, s)
	}
	return n, nil
}

func runDBCreate(ctx context.Context, inv *invocation) error {
	name := inv.str("--name")
	if len(inv.args) == 1 {
		if name != "" && name != inv.args[0] {
			return usagef(inv.cmd, "name given twice: -n %q and argument %q", name, inv.args[0])
		}
		name = inv.args[0]
	}
	if name == "" {
		return usagef(inv.cmd, "missing -n/--name NAME")
	}
	req := core.CreateDatabaseRequest{Name: name}
	if acct, db, ok := strings.Cut(name, "/"); ok {
		if acct == "" || db == "" || strings.Contains(db, "/") {
			return usagef(inv.cmd, "database name %q is not of the form account/db or db", name)
		}
		req.Account, req.Name = acct, db
	} else if a := inv.str("--account"); a != "" {
		req.Account = a
	}
	private, err := createPrivacy(inv)
	if err != nil {
		return err
	}
	req.IsPrivate = &private
	if s := inv.str("--storage-limit"); s != "" {
		n, err := parseBytes(inv, "--storage-limit", s)
		if err != nil {
			return err
		}
		req.StorageLimitBytes = n
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	d, err := c.CreateDatabase(ctx, req)
	if err != nil {
		return err
	}
	return inv.emit(d, databaseTable([]core.Database{*d}))
}

func runDBInfo(ctx context.Context, inv *invocation) error {
	c, name, err := inv.dbTarget(ctx)
	if err != nil {
		return err
	}
	d, err := c.GetDatabase(ctx, name)
	if err != nil {
		return err
	}
	return inv.emit(d, databaseTable([]core.Database{*d}))
}

func runDBUpdate(ctx context.Context, inv *invocation) error {
	name, err := inv.dbArg()
	if err != nil {
		return err
	}
	var req core.UpdateDatabaseRequest
	if n := inv.str("--name"); n != "" {
		if i := strings.LastIndexByte(n, '/'); i >= 0 {
			n = n[i+1:] // "account/new" renames within the account
		}
		req.Name = &n
	}
	private, given, err := boolFlag(inv, "--is_private")
	if err != nil {
		return err
	}
	if public, pgiven, err := boolFlag(inv, "--public"); err != nil {
		return err
	} else if pgiven {
		if given && private == public {
			return usagef(inv.cmd, "-p/--is_private and --public contradict each other")
		}
		private, given = !public, true
	}
	if given {
		req.IsPrivate = &private
	}
	if s := inv.str("--storage-limit"); s != "" {
		n, err := parseBytes(inv, "--storage-limit", s)
		if err != nil {
			return err
		}
		req.StorageLimitBytes = &n
	}
	if req.Name == nil && req.IsPrivate == nil && req.StorageLimitBytes == nil {
		return usagef(inv.cmd, "nothing to update: give -n NEWNAME, -p true|false or --storage-limit BYTES")
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	if name, err = fullDBName(ctx, c, inv, name); err != nil {
		return err
	}
	d, err := c.UpdateDatabase(ctx, name, req)
	if err != nil {
		return err
	}
	return inv.emit(d, databaseTable([]core.Database{*d}))
}

func runDBDelete(ctx context.Context, inv *invocation) error {
	c, name, err := inv.dbTarget(ctx)
	if err != nil {
		return err
	}
	if inv.app.stdinTTY && !inv.opt("--yes").on() {
		ok, err := inv.confirm(ctx, fmt.Sprintf("Delete the database %s and all its data? This cannot be undone. [y/N] ", name))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s was not deleted: the deletion was not confirmed (answer y, or pass --yes)", name)
		}
	}
	if err := c.DeleteDatabase(ctx, name); err != nil {
		return err
	}
	return inv.emit(map[string]any{"deleted": name}, func() tabular {
		return tabular{cols: []string{"deleted"}, rows: [][]any{{name}}}
	})
}

// confirm asks question on stderr and reads the answer from stdin: true for
// y or yes (any case), false for anything else, including an empty line or
// the end of the input. Ctrl-C while it waits ends the wait with ctx's error.
func (inv *invocation) confirm(ctx context.Context, question string) (bool, error) {
	fmt.Fprint(inv.app.stderr, question)
	type answer struct {
		line string
		err  error
	}
	got := make(chan answer, 1)
	go func() { // abandoned when ctx ends first: the process is about to exit
		line, err := bufio.NewReader(inv.app.stdin).ReadString('\n')
		got <- answer{line, err}
	}()
	var a answer
	select {
	case <-ctx.Done():
		fmt.Fprintln(inv.app.stderr)
		return false, fmt.Errorf("waiting for confirmation: %w", ctx.Err())
	case a = <-got:
	}
	if a.err != nil && a.line == "" {
		fmt.Fprintln(inv.app.stderr)
		if errors.Is(a.err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("read the answer: %w", a.err)
	}
	switch strings.ToLower(strings.TrimSpace(a.line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// boolFlag reads a flag holding true|false; given is false when absent.
func boolFlag(inv *invocation, name string) (v, given bool, err error) {
	o := inv.opt(name)
	if !o.set {
		return false, false, nil
	}
	v, err = strconv.ParseBool(o.str(""))
	if err != nil {
		return false, false, usagef(inv.cmd, "%s takes true or false, not %q", strings.Join(o.names, "/"), o.str(""))
	}
	return v, true, nil
}

// createPrivacy decides whether db create makes a private database: private
// unless --public or a bare -p; "-p VALUE" and --is_private VALUE are
// python-bitdotio's is_private.
func createPrivacy(inv *invocation) (bool, error) {
	private := true
	var sources []string
	if inv.opt("--public").on() {
		private = false
		sources = append(sources, "--public")
	}
	if p := inv.opt("-p"); p.set {
		if v := p.str(""); v == "" {
			private = false
		} else {
			private, _ = strconv.ParseBool(v) // isBoolLiteral accepted it
		}
		sources = append(sources, "-p")
	}
	if v, given, err := boolFlag(inv, "--is_private"); err != nil {
		return false, err
	} else if given {
		private = v
		sources = append(sources, "--is_private")
	}
	if len(sources) > 1 {
		return false, usagef(inv.cmd, "give only one of --public, -p and --is_private")
	}
	return private, nil
}
