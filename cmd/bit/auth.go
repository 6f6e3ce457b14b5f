package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

func loginCommand() *command {
	return &command{
		name:     "login",
		synopsis: "[-u USER] [--password-stdin]",
		summary:  "log in with a user name and password and keep the session for later commands",
		long: `The password comes from $BITKIT_PASSWORD, else from stdin with --password-stdin
(one line), else from a prompt on the terminal (not echoed). The password is
never stored: the access token and refresh token the server returns are kept
in the token cache ($BITKIT_CACHE_DIR, default ~/.cache/bitkit, files mode
0600) and used by later commands run without an API key. When the access
token expires (1 hour by default) the next command trades the refresh token
for a new pair, so the session lasts until it is unused for the server's idle
lifetime (14 days by default), reaches its absolute lifetime (90 days), or
"bit logout" revokes it. Logging in again replaces (and revokes) the previous
session of the user.`,
		maxArgs: 1,
		flags: func(fs *flagSet) {
			fs.add(&option{names: []string{"-u", "--user", "--username"}, metavar: "USER", help: "user name (default: $BITKIT_USER, else a prompt)"})
			fs.add(&option{names: []string{"--password-stdin"}, help: "read the password from the first line of stdin"})
		},
		run: runLogin,
	}
}

func logoutCommand() *command {
	return &command{
		name:    "logout",
		summary: "end the `bit login` session for the endpoint (its refresh and access tokens are revoked on the server)",
		run:     runLogout,
	}
}

func accountCommand() *command {
	return &command{
		name:     "account",
		synopsis: "[-a NAME]",
		summary:  "show your default account, or look up the account NAME",
		maxArgs:  1,
		flags: func(fs *flagSet) {
			fs.add(&option{names: []string{"-a", "--name"}, metavar: "NAME", help: "account name to look up (default: your own)"})
		},
		run: runAccount,
	}
}

func keyCommand() *command {
	return group("key", "list, create and revoke your API keys",
		&command{
			name:    "list",
			summary: "list your API keys (id, label, created, last used; never the key itself)",
			run:     runKeyList,
		},
		&command{
			name:    "create",
			summary: "create an API key (printed once: store it now)",
			run:     runKeyCreate,
		},
		&command{
			name:     "revoke",
			synopsis: "(KEY | --id ID | --all)",
			summary:  "revoke one of your API keys, or all of them",
			maxArgs:  1,
			flags: func(fs *flagSet) {
				fs.add(&option{names: []string{"--id"}, metavar: "ID", help: "revoke the key with this id (see `bit key list`) instead of giving the key"})
				fs.add(&option{names: []string{"--all"}, help: "revoke every API key of yours (including the one in use)"})
			},
			run: runKeyRevoke,
		},
	)
}

func saCommand() *command {
	idCmd := func(name, summary string, run func(context.Context, *invocation) error) *command {
		return &command{name: name, synopsis: "ID", summary: summary, maxArgs: 1, run: run}
	}
	return group("sa", "manage service accounts and their API keys",
		&command{name: "list", summary: "list the service accounts you manage", run: runSAList},
		idCmd("info", "show one service account", runSAInfo),
		&command{
			name:     "create",
			synopsis: "-n NAME --role ROLE [-d DB]...",
			summary:  "create a service account with a role on some databases",
			flags: func(fs *flagSet) {
				fs.add(&option{names: []string{"-n", "--name"}, metavar: "NAME", help: "service account name"})
				fs.add(&option{names: []string{"--role"}, metavar: "ROLE", help: "role on the databases: OWNER, ADMIN, WRITER or READER"})
				fs.add(&option{names: []string{"-d", "--database", "--db"}, metavar: "DB", repeat: true, help: "database it may use (repeat; account/db, or db in your own account)"})
			},
			run: runSACreate,
		},
		group("key", "create and revoke a service account's API keys",
			idCmd("create", "create an API key for service account ID (printed once)", runSAKeyCreate),
			idCmd("revoke", "revoke every API key of service account ID", runSAKeyRevoke),
		),
	)
}

// requireID returns the single ID argument.
func (inv *invocation) requireID() (string, error) {
	if len(inv.args) != 1 || inv.args[0] == "" {
		return "", usagef(inv.cmd, "missing the service account ID (see `bit sa list`)")
	}
	return inv.args[0], nil
}

func runLogin(ctx context.Context, inv *invocation) error {
	if _, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV); err != nil {
		return err
	}
	a := inv.app
	user := inv.str("--user")
	if len(inv.args) == 1 {
		if user != "" && user != inv.args[0] {
			return usagef(inv.cmd, "user given twice: -u %q and argument %q", user, inv.args[0])
		}
		user = inv.args[0]
	}
	if user == "" {
		user = a.getenv("BITKIT_USER")
	}
	stdin := bufio.NewReader(a.stdin)
	if user == "" {
		if !a.stdinTTY {
			return usagef(inv.cmd, "missing -u USER (no terminal to ask on)")
		}
		fmt.Fprint(a.stderr, "User: ")
		line, err := stdin.ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read the user name: %w", err)
		}
		user = strings.TrimSpace(line)
		if user == "" {
			return usagef(inv.cmd, "the user name is empty")
		}
	}
	password := a.getenv(envPassword)
	switch {
	case password != "":
	case inv.opt("--password-stdin").on():
		line, err := stdin.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	case a.stdinTTY && a.readPassword != nil:
		fmt.Fprintf(a.stderr, "Password for %s: ", user)
		p, err := a.readPassword()
		fmt.Fprintln(a.stderr)
		if err != nil {
			return fmt.Errorf("read the password: %w", err)
		}
		password = p
	default:
		return usagef(inv.cmd, "no password: set $%s, use --password-stdin, or run on a terminal to be asked", envPassword)
	}
	if password == "" {
		return usagef(inv.cmd, "the password is empty")
	}
	// The login always checks the password and starts a new session: the
	// tokens land in lc first, and replace the cached session (revoked on
	// the server) only once the login worked.
	lc := &loginCache{}
	sc := &sessionCache{inner: lc}
	opts := append(inv.baseOptions(), core.WithCredentials(core.UsernamePassword(user, password, core.WithTokenCache(sc))))
	c, err := inv.newClient(opts...)
	if err != nil {
		return err
	}
	if err := c.Login(ctx); err != nil {
		return err
	}
	acct, err := c.Account(ctx)
	if err != nil {
		return err
	}
	fc := core.NewFileTokenCache(inv.cacheDir())
	if prev, err := inv.newClient(append(inv.baseOptions(),
		core.WithCredentials(core.UsernamePassword(user, "", core.WithTokenCache(fc))))...); err == nil {
		if err := prev.Logout(ctx); err != nil {
			fmt.Fprintf(inv.app.stderr, "bit: the previous session of %s could not be revoked on the server: %v\n", user, err)
		}
	}
	if key, tok, ok := lc.stored(); ok {
		if err := fc.Put(ctx, key, tok); err != nil {
			return fmt.Errorf("keep the login session: %w", err)
		}
	}
	if err := saveSession(inv.cacheDir(), c.Endpoint(), user); err != nil {
		return err
	}
	out := struct {
		User      string        `json:"user"`
		Account   *core.Account `json:"account"`
		Endpoint  string        `json:"endpoint"`
		ExpiresAt *time.Time    `json:"expires_at,omitempty"`
	}{user, acct, c.Endpoint(), sc.putExpiry()}
	return inv.emit(out, func() tabular {
		return tabular{cols: []string{"user", "account", "endpoint", "expires_at"},
			rows: [][]any{{user, acct.Name, c.Endpoint(), out.ExpiresAt}}}
	})
}

// loginCache is the token cache of `bit login`: it finds nothing (so the
// login uses the password) and keeps what the login stored, for runLogin
// to put in the file cache.
type loginCache struct {
	mu  sync.Mutex
	key string
	tok core.CachedToken
	ok  bool
}

func (l *loginCache) Get(context.Context, string) (core.CachedToken, bool, error) {
	return core.CachedToken{}, false, nil
}

func (l *loginCache) Put(_ context.Context, key string, t core.CachedToken) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.key, l.tok, l.ok = key, t, true
	return nil
}

func (l *loginCache) Delete(context.Context, string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ok = false
	return nil
}

func (l *loginCache) stored() (string, core.CachedToken, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.key, l.tok, l.ok
}

func runLogout(ctx context.Context, inv *invocation) error {
	if _, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV); err != nil {
		return err
	}
	probe, err := inv.newClient()
	if err != nil {
		return err
	}
	endpoint := probe.Endpoint()
	user, err := loadSession(inv.cacheDir(), endpoint)
	if err != nil {
		return err
	}
	out := map[string]any{"endpoint": endpoint, "logged_out": user != ""}
	if user == "" {
		fmt.Fprintf(inv.app.stderr, "bit: not logged in at %s\n", endpoint)
	} else {
		out["user"] = user
		cache := core.NewFileTokenCache(inv.cacheDir())
		c, err := inv.newClient(append(inv.baseOptions(),
			core.WithCredentials(core.UsernamePassword(user, "", core.WithTokenCache(cache))))...)
		if err != nil {
			return err
		}
		logoutErr := c.Logout(ctx)
		// The local session goes even when the server could not be told, so
		// that later commands do not keep using it.
		if err := saveSession(inv.cacheDir(), endpoint, ""); err != nil {
			return err
		}
		if logoutErr != nil {
			return logoutErr
		}
	}
	return inv.emit(out, func() tabular {
		return tabular{cols: []string{"endpoint", "user", "logged_out"}, rows: [][]any{{endpoint, user, user != ""}}}
	})
}

func accountTable(a *core.Account) func() tabular {
	return func() tabular { return tabular{cols: []string{"id", "name"}, rows: [][]any{{a.ID, a.Name}}} }
}

func runAccount(ctx context.Context, inv *invocation) error {
	if _, err := inv.outputFormat(fmtJSON, fmtTable, fmtCSV); err != nil {
		return err
	}
	name := inv.str("--name")
	if len(inv.args) == 1 {
		name = inv.args[0]
	}
	if name == "" {
		name = inv.str("--account")
	}
	if name == "" {
		c, err := inv.client()
		if err != nil {
			return err
		}
		a, err := c.Account(ctx)
		if err != nil {
			return err
		}
		return inv.emit(a, accountTable(a))
	}
	c2, err := inv.client(core.WithAccount(name))
	if err != nil {
		return err
	}
	id, err := c2.AccountID(ctx)
	if errors.Is(err, core.ErrAccountNotFound) {
		return fmt.Errorf("account %q does not exist or is not visible to you; check the name (`bit account` shows your own)", name)
	}
	if err != nil {
		return err
	}
	a := &core.Account{ID: id, Name: name}
	return inv.emit(a, accountTable(a))
}

func keyTable(k *core.APIKey) func() tabular {
	return func() tabular {
		return tabular{cols: []string{"api_key", "username"}, rows: [][]any{{k.APIKey, k.Username}}}
	}
}

func runKeyCreate(ctx context.Context, inv *invocation) error {
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	k, err := c.CreateAPIKey(ctx)
	if err != nil {
		return err
	}
	return inv.emit(k, keyTable(k))
}

func runKeyList(ctx context.Context, inv *invocation) error {
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	return inv.emit(map[string]any{"api_keys": keys}, func() tabular {
		t := tabular{cols: []string{"id", "label", "date_created", "last_used", "current"}}
		for _, k := range keys {
			t.rows = append(t.rows, []any{k.ID, k.Label, k.DateCreated, k.LastUsed, k.Current})
		}
		return t
	})
}

func runKeyRevoke(ctx context.Context, inv *invocation) error {
	all := inv.opt("--all").on()
	id := inv.str("--id")
	given := 0
	for _, g := range []bool{all, id != "", len(inv.args) == 1} {
		if g {
			given++
		}
	}
	switch {
	case given > 1:
		return usagef(inv.cmd, "give one of KEY, --id ID and --all")
	case given == 0:
		return usagef(inv.cmd, "missing KEY to revoke (or --id ID from `bit key list`, or --all for every key)")
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	switch {
	case all:
		err = c.RevokeAllAPIKeys(ctx)
	case id != "":
		err = c.RevokeAPIKeyByID(ctx, id)
	default:
		err = c.RevokeAPIKey(ctx, inv.args[0])
	}
	if err != nil {
		return err
	}
	out := map[string]any{"revoked": true, "all": all}
	return inv.emit(out, func() tabular { return tabular{cols: []string{"revoked", "all"}, rows: [][]any{{true, all}}} })
}

func saTable(sas []core.ServiceAccount) func() tabular {
	return func() tabular {
		t := tabular{cols: []string{"id", "name", "role", "databases", "active_token_count", "token_count", "date_created"}}
		for _, s := range sas {
			names := make([]string, len(s.Databases))
			for i, d := range s.Databases {
				names[i] = d.Name
			}
			t.rows = append(t.rows, []any{s.ID, s.Name, s.Role, strings.Join(names, " "), s.ActiveTokenCount, s.TokenCount, s.DateCreated})
		}
		return t
	}
}

func runSAList(ctx context.Context, inv *invocation) error {
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	sas, err := c.ListServiceAccounts(ctx)
	if err != nil {
		return err
	}
	if sas == nil {
		sas = []core.ServiceAccount{}
	}
	return inv.emit(map[string]any{"service_accounts": sas}, saTable(sas))
}

func runSAInfo(ctx context.Context, inv *invocation) error {
	id, err := inv.requireID()
	if err != nil {
		return err
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	sa, err := c.GetServiceAccount(ctx, id)
	if err != nil {
		return err
	}
	return inv.emit(sa, saTable([]core.ServiceAccount{*sa}))
}

func runSACreate(ctx context.Context, inv *invocation) error {
	name := inv.str("--name")
	role := strings.ToUpper(inv.str("--role"))
	if name == "" {
		return usagef(inv.cmd, "missing -n/--name NAME")
	}
	if !contains([]string{"OWNER", "ADMIN", "WRITER", "READER"}, role) {
		return usagef(inv.cmd, "--role must be OWNER, ADMIN, WRITER or READER, not %q", inv.str("--role"))
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	req := core.CreateServiceAccountRequest{Name: name, Role: role, Databases: []string{}}
	for _, d := range inv.opt("--database").vals {
		full, err := fullDBName(ctx, c, inv, d)
		if err != nil {
			return err
		}
		req.Databases = append(req.Databases, full)
	}
	sa, err := c.CreateServiceAccount(ctx, req)
	if err != nil {
		return err
	}
	return inv.emit(sa, saTable([]core.ServiceAccount{*sa}))
}

func runSAKeyCreate(ctx context.Context, inv *invocation) error {
	id, err := inv.requireID()
	if err != nil {
		return err
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	k, err := c.CreateServiceAccountKey(ctx, id)
	if err != nil {
		return err
	}
	return inv.emit(k, keyTable(k))
}

func runSAKeyRevoke(ctx context.Context, inv *invocation) error {
	id, err := inv.requireID()
	if err != nil {
		return err
	}
	c, err := inv.tabularClient()
	if err != nil {
		return err
	}
	if err := c.RevokeServiceAccountKeys(ctx, id); err != nil {
		return err
	}
	out := map[string]any{"service_account": id, "revoked": true}
	return inv.emit(out, func() tabular {
		return tabular{cols: []string{"service_account", "revoked"}, rows: [][]any{{id, true}}}
	})
}
