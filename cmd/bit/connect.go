package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// defaultPGPort is the port assumed for the wire proxy when only the API
// endpoint's host is known.
const defaultPGPort = "5432"

func connectFlags(fs *flagSet) {
	dbFlag(fs)
	fs.add(&option{names: []string{"--pg-addr"}, metavar: "HOST:PORT",
		help: "address of bitd's PostgreSQL proxy (default: $BITKIT_PG_ADDR, else the endpoint's host with port 5432)"})
	fs.add(&option{names: []string{"--sslmode"}, metavar: "MODE", help: "libpq sslmode (default verify-full when the server's CA is known, else require)"})
	fs.add(&option{names: []string{"--sslrootcert"}, metavar: "FILE", help: "PEM file of the server's CA, for libpq to verify the proxy's certificate (default: $BITKIT_CA_CERT)"})
}

func connectCommand() *command {
	return &command{
		name:     "connect",
		synopsis: "-d DB [--show-password] [--pg-addr HOST:PORT] [--sslmode MODE] [--sslrootcert FILE]",
		summary:  "print a postgresql:// connection string for direct access",
		long: `The password in the string is your API key (or your login session's access
token); it is shown as REDACTED unless --show-password. The user name is the
database's account. Output is the bare string (one line) unless --format json
asks for an object with its parts. When the server's CA is known (--sslrootcert
or $BITKIT_CA_CERT, which bitd dev --tls writes into demo.env) the string asks
libpq to verify the server: sslmode=verify-full and sslrootcert=FILE.`,
		maxArgs: 1,
		flags: func(fs *flagSet) {
			connectFlags(fs)
			fs.add(&option{names: []string{"--show-password"}, help: "put the real password in the string (it is a credential: keep it secret)"})
		},
		run: runConnect,
	}
}

func psqlCommand() *command {
	return &command{
		name:     "psql",
		synopsis: "-d DB [--pg-addr HOST:PORT] [-- PSQL-ARGS...]",
		summary:  "run psql connected to a database",
		long: `psql (from $PATH, or $BITKIT_PSQL) gets the connection string without the
password and the password in $PGPASSWORD, so it never appears in a process
listing. Arguments after -- go to psql, e.g. bit psql -d db -- -c 'select 1'.
With the server's CA known (--sslrootcert or $BITKIT_CA_CERT) psql verifies
the server's certificate (sslmode=verify-full). bit exits with psql's exit
status.`,
		maxArgs:     1,
		passthrough: true,
		flags:       connectFlags,
		run:         runPsql,
	}
}

// connInfo is what a direct connection needs.
type connInfo struct {
	Host     string `json:"host"`
	Port     string `json:"port"`
	Database string `json:"database"`
	User     string `json:"user"`
	SSLMode  string `json:"sslmode"`
	// SSLRootCert is the CA file libpq verifies the server with.
	SSLRootCert string `json:"sslrootcert,omitempty"`
	URL         string `json:"url"`
	password    string
}

// uri renders the connection string with the password, REDACTED, or none.
func (ci connInfo) uri(password string) string {
	u := url.URL{Scheme: "postgresql", Host: net.JoinHostPort(ci.Host, ci.Port)}
	if password != "" {
		u.User = url.UserPassword(ci.User, password)
	} else {
		u.User = url.User(ci.User)
	}
	s := u.String() + "/" + url.PathEscape(ci.Database)
	q := url.Values{}
	if ci.SSLMode != "" {
		q.Set("sslmode", ci.SSLMode)
	}
	if ci.SSLRootCert != "" {
		q.Set("sslrootcert", ci.SSLRootCert)
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// pgAddr is --pg-addr, else $BITKIT_PG_ADDR, else the endpoint's host with
// port 5432.
func (inv *invocation) pgAddr() (host, port string, err error) {
	addr := inv.str("--pg-addr")
	if addr == "" {
		addr = inv.app.getenv(envPGAddr)
	}
	if addr == "" {
		u, err := url.Parse(inv.endpoint())
		if err != nil || u.Hostname() == "" {
			return "", "", fmt.Errorf("cannot derive the PostgreSQL address from the endpoint: give --pg-addr HOST:PORT or $%s", envPGAddr)
		}
		return u.Hostname(), defaultPGPort, nil
	}
	host, port, err = net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", "", usagef(inv.cmd, "the PostgreSQL address %q is not HOST:PORT", addr)
	}
	return host, port, nil
}

// sslSettings are libpq's sslmode and sslrootcert: with the server's CA
// known (--sslrootcert, else $BITKIT_CA_CERT) verify-full against it, else
// require (encrypted, unverified, as libpq's default would not be); an
// explicit --sslmode wins.
func (inv *invocation) sslSettings() (mode, rootCert string, err error) {
	rootCert = inv.str("--sslrootcert")
	if rootCert == "" {
		rootCert = inv.app.getenv(envCACert)
	}
	if rootCert != "" && rootCert != "system" {
		// libpq resolves a relative path from psql's directory, which is
		// bit's; an absolute one survives being copied elsewhere.
		if rootCert, err = filepath.Abs(rootCert); err != nil {
			return "", "", err
		}
		if _, err := os.Stat(rootCert); err != nil {
			return "", "", fmt.Errorf("the CA file for sslrootcert (--sslrootcert or $%s): %w", envCACert, err)
		}
	}
	mode = inv.str("--sslmode")
	switch {
	case mode != "":
	case rootCert != "":
		mode = "verify-full"
	default:
		mode = "require"
	}
	return mode, rootCert, nil
}

// connectInfo resolves the database, address and credentials.
func (inv *invocation) connectInfo(ctx context.Context) (connInfo, error) {
	name, err := inv.dbArg()
	if err != nil {
		return connInfo{}, err
	}
	host, port, err := inv.pgAddr()
	if err != nil {
		return connInfo{}, err
	}
	c, err := inv.client()
	if err != nil {
		return connInfo{}, err
	}
	if name, err = fullDBName(ctx, c, inv, name); err != nil {
		return connInfo{}, err
	}
	password := inv.apiKey()
	if password == "" && inv.session != nil {
		// A session: its token, fetched from the cache by an earlier call or
		// now (Login with no token in memory only reads the cache).
		if password = inv.session.cache.lastToken(); password == "" {
			if err := c.Login(ctx); err != nil {
				return connInfo{}, err
			}
			password = inv.session.cache.lastToken()
		}
		if password == "" {
			return connInfo{}, inv.session.expiredError()
		}
	}
	mode, rootCert, err := inv.sslSettings()
	if err != nil {
		return connInfo{}, err
	}
	acct, _, _ := strings.Cut(name, "/")
	ci := connInfo{Host: host, Port: port, Database: name, User: acct, SSLMode: mode, SSLRootCert: rootCert, password: password}
	return ci, nil
}

func runConnect(ctx context.Context, inv *invocation) error {
	format, err := inv.outputFormat("text", fmtJSON)
	if err != nil {
		return err
	}
	ci, err := inv.connectInfo(ctx)
	if err != nil {
		return err
	}
	shown := "REDACTED"
	if inv.opt("--show-password").on() {
		shown = ci.password
	}
	ci.URL = ci.uri(shown)
	if format == fmtJSON {
		return writeJSON(inv.app.out, ci)
	}
	_, err = fmt.Fprintln(inv.app.out, ci.URL)
	return err
}

// exitStatusError makes bit exit with a child process's status.
type exitStatusError struct{ code int }

func (e *exitStatusError) Error() string { return fmt.Sprintf("psql exited with status %d", e.code) }

func runPsql(ctx context.Context, inv *invocation) error {
	ci, err := inv.connectInfo(ctx)
	if err != nil {
		return err
	}
	psql := inv.app.getenv("BITKIT_PSQL")
	if psql == "" {
		if psql, err = exec.LookPath("psql"); err != nil {
			return errors.New("psql is not installed or not on $PATH: install the PostgreSQL client (e.g. apt-get install postgresql-client) or set $BITKIT_PSQL")
		}
	}
	cmd := exec.CommandContext(ctx, psql, append([]string{ci.uri("")}, inv.passthrough...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+ci.password)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inv.app.stdin, inv.app.stdout, inv.app.stderr
	if err := inv.app.out.Flush(); err != nil {
		return err
	}
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return &exitStatusError{code: exitErr.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("run psql: %w", err)
	}
	return nil
}
