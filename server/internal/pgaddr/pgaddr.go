// Package pgaddr decides how bitd reaches PostgreSQL as the platform's
// tenant roles (the owner, writer and reader login roles of every platform
// database), for the HTTP pools and the wire proxy alike.
//
// A locked-down cluster accepts tenant roles only on its Unix socket, whose
// directory only bitd's (or the cluster's) OS user may open, and rejects
// them on every TCP address (see docs/bitd.md, "Locking the cluster"). So,
// unless told otherwise (--pg-backend), when the admin URL points at a
// loopback address bitd asks the server where its sockets are and uses the
// first one it can connect to; a remote cluster is reached at the admin
// URL's host and port.
package pgaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Addr is where bitd connects as tenant roles.
type Addr struct {
	// Host is a host name or IP address, or, when it starts with "/", the
	// directory holding the server's Unix socket (.s.PGSQL.<Port>).
	Host string
	Port uint16
	// Why says how Addr was chosen, for the start-up log.
	Why string
	// NoSocket: the admin URL is loopback but no Unix socket could be
	// used, so Addr is its TCP address, which a locked-down cluster
	// refuses to tenant roles (bitd warns).
	NoSocket bool
}

// Unix reports whether a is a Unix socket.
func (a Addr) Unix() bool { return strings.HasPrefix(a.Host, "/") }

// OpenToOthers reports whether a is a Unix socket that every OS user of
// this host may connect to (its directory searchable and the socket
// writable by others). On a locked-down cluster tenant roles are trusted on
// that socket, so it must be closed to others (unix_socket_permissions =
// 0700, or 0770 with unix_socket_group, and a private directory).
func (a Addr) OpenToOthers() bool {
	if !a.Unix() {
		return false
	}
	d, err := os.Stat(a.Host)
	if err != nil || d.Mode().Perm()&0o001 == 0 {
		return false
	}
	f, err := os.Stat(filepath.Join(a.Host, ".s.PGSQL."+strconv.Itoa(int(a.Port))))
	return err == nil && f.Mode().Perm()&0o002 != 0
}

// String is "host:port" ("/dir:port" for a Unix socket; IPv6 hosts in
// brackets): the form of proxy.WireTarget.BackendAddr and of
// pgpool.Config.TenantAddr.
func (a Addr) String() string {
	if a.Unix() {
		return a.Host + ":" + strconv.Itoa(int(a.Port))
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port)))
}

// Parse reads an Addr in String's form, or a bare socket directory (then
// the port is defaultPort). A directory must exist.
func Parse(s string, defaultPort uint16) (Addr, error) {
	if strings.HasPrefix(s, "/") {
		dir, port := s, defaultPort
		if i := strings.LastIndexByte(s, ':'); i > 0 {
			p, err := strconv.ParseUint(s[i+1:], 10, 16)
			if err != nil || p == 0 {
				return Addr{}, fmt.Errorf("%q: the port after the socket directory is not a number", s)
			}
			dir, port = s[:i], uint16(p)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return Addr{}, fmt.Errorf("%s: not a directory (give PostgreSQL's unix_socket_directories entry, or host:port)", dir)
		}
		return Addr{Host: filepath.Clean(dir), Port: port}, nil
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, fmt.Errorf("%q: want host:port or a Unix-socket directory", s)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 || host == "" {
		return Addr{}, fmt.Errorf("%q: want host:port or a Unix-socket directory", s)
	}
	return Addr{Host: host, Port: uint16(p)}, nil
}

// Tenant returns where bitd reaches PostgreSQL as tenant roles, given the
// admin connection string (the --database-url) and the --pg-backend
// override ("" for none):
//   - the override, when set (host:port, a socket directory, or dir:port;
//     a bare directory takes the admin URL's port);
//   - the admin URL's socket directory, when it already names one;
//   - when the admin URL's host is a loopback address, the first of the
//     server's unix_socket_directories (DefaultSocketDirs when the admin
//     may not read that setting) where .s.PGSQL.<port> exists and the
//     admin can log in (it connects once to ask);
//   - otherwise, or when no socket works, the admin URL's host and port.
//
// Errors never carry the connection string's password.
func Tenant(ctx context.Context, adminConnString, override string) (Addr, error) {
	cfg, err := pgconn.ParseConfig(adminConnString)
	if err != nil {
		return Addr{}, errors.New("pgaddr: invalid database URL")
	}
	if override != "" {
		a, err := Parse(override, cfg.Port)
		if err != nil {
			return Addr{}, fmt.Errorf("--pg-backend %w", err)
		}
		a.Why = "--pg-backend"
		return a, nil
	}
	admin := Addr{Host: cfg.Host, Port: cfg.Port}
	if admin.Unix() {
		admin.Why = "the database URL's Unix socket"
		return admin, nil
	}
	if !loopback(cfg.Host) {
		admin.Why = "the database URL's host (a remote cluster: see docs/bitd.md, \"Locking the cluster\")"
		return admin, nil
	}
	a, err := findSocket(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return Addr{}, fmt.Errorf("pgaddr: %w", ctx.Err())
		}
		admin.Why = "the database URL's host: no usable Unix socket (" + err.Error() + ")"
		admin.NoSocket = true
		return admin, nil
	}
	return a, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// findSocket asks the server for its socket directories and port, and
// returns the first socket the admin can log in on.
func findSocket(ctx context.Context, cfg *pgconn.Config) (Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return Addr{}, fmt.Errorf("connect to ask for the socket: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ps, err := setting(ctx, conn, "port")
	if err != nil {
		return Addr{}, fmt.Errorf("ask for the port: %w", err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return Addr{}, fmt.Errorf("server port %q: %w", ps, err)
	}
	// Superuser-only (or pg_read_all_settings): other admins try the
	// usual places.
	dirs, err := setting(ctx, conn, "unix_socket_directories")
	if err != nil {
		dirs = strings.Join(DefaultSocketDirs, ",")
	}
	var tried []string
	for _, d := range strings.Split(dirs, ",") {
		d = strings.TrimSpace(d)
		if !strings.HasPrefix(d, "/") { // "" or an abstract (@) socket
			continue
		}
		a := Addr{Host: d, Port: uint16(port), Why: "the server's Unix socket (found from the database URL)"}
		if err := tryLogin(ctx, cfg, a); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", filepath.Join(d, ".s.PGSQL."+ps), err))
			continue
		}
		return a, nil
	}
	if len(tried) == 0 {
		return Addr{}, errors.New("the server has no Unix socket (unix_socket_directories is empty)")
	}
	return Addr{}, errors.New(strings.Join(tried, "; "))
}

// DefaultSocketDirs are tried when the admin may not read
// unix_socket_directories (a non-superuser without pg_read_all_settings).
var DefaultSocketDirs = []string{"/var/run/postgresql", "/run/postgresql", "/tmp"}

// setting returns current_setting(name).
func setting(ctx context.Context, conn *pgconn.PgConn, name string) (string, error) {
	res := conn.ExecParams(ctx, "SELECT current_setting($1)", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return "", errors.New("no answer")
	}
	return string(res.Rows[0][0]), nil
}

// tryLogin logs in as the admin on socket a.
func tryLogin(ctx context.Context, cfg *pgconn.Config, a Addr) error {
	path := filepath.Join(a.Host, ".s.PGSQL."+strconv.Itoa(int(a.Port)))
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return errors.New("permission denied (run bitd as the cluster's OS user or root)")
		}
		return errors.New("no socket there")
	}
	c := cfg.Copy()
	c.Host, c.Port, c.TLSConfig, c.Fallbacks = a.Host, a.Port, nil, nil
	conn, err := pgconn.ConnectConfig(ctx, c)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return fmt.Errorf("login refused: %s (SQLSTATE %s)", pe.Message, pe.Code)
		}
		return errors.New("cannot connect")
	}
	conn.Close(context.WithoutCancel(ctx))
	return nil
}
