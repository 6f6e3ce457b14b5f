// Package pgcluster runs a private PostgreSQL cluster for `bitd dev`: it
// finds the server binaries ($PGBIN, /usr/lib/postgresql/*/bin newest first,
// then PATH), runs initdb once under DIR, starts postgres on a free loopback
// port, and stops it with a fast shutdown.
//
// When bitd runs as root, initdb and postgres (which refuse to run as root)
// run as the "postgres" user when it exists, else as a system user
// "bitkit-pg" created with useradd; DIR is chowned to that user.
//
// The superuser is "bitkit" with a random password kept in DIR/.pwfile
// (0600); connections use password authentication on 127.0.0.1 only.
//
// The cluster is locked down (HBA, written at every start): tenant roles
// (members of bitkit_tenants) log in only on the Unix socket, which only
// the cluster's OS user (and root) may open, and only to their own
// database; every TCP address refuses them. A password a tenant sets on
// its own role therefore opens nothing.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
)

// HBA is the pg_hba.conf of a locked-down cluster whose bitd admin role is
// admin: bitd's admin roles (admin, and members of bitkit_admins, which
// store.Open makes its admin) log in with a password; tenant roles
// (members of bitkit_tenants) log in only on the Unix socket and only to
// the database named like a role they are a member of (samerole: their
// own); everyone else logs in with a password on the socket and loopback.
// The admin's lines come first because pg_hba's "+group" follows
// memberships, and the admin is a member of every tenant login role. Run
// the cluster with unix_socket_permissions = 0700 and a socket directory
// only its OS user may enter.
func HBA(admin string) string {
	return `# Written by bitkit at every start: tenant roles log in only through bitd.
# See docs/bitd.md, "Locking the cluster: no way in but through bitd".
# TYPE  DATABASE  USER                        ADDRESS        METHOD
local   all       ` + admin + `,+bitkit_admins                   scram-sha-256
host    all       ` + admin + `,+bitkit_admins    127.0.0.1/32   scram-sha-256
host    all       ` + admin + `,+bitkit_admins    ::1/128        scram-sha-256
local   samerole  +bitkit_tenants                              trust
local   all       +bitkit_tenants                              reject
host    all       +bitkit_tenants               all            reject
local   all       all                                          scram-sha-256
host    all       all                           127.0.0.1/32   scram-sha-256
host    all       all                           ::1/128        scram-sha-256
`
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	Dir  string // data directory (DIR/data)
	Port int
	URL  string // superuser connection URL to database "postgres"
	// SocketDir is the directory of the cluster's Unix socket (0700: only
	// the cluster's OS user and root may connect; tenant roles log in only
	// there, see HBA).
	SocketDir string

	cmd  *exec.Cmd
	done chan struct{}
	cred *syscall.Credential
	bin  string
}

// FindBinDir returns the directory holding initdb and postgres.
func FindBinDir() (string, error) {
	if d := os.Getenv("PGBIN"); d != "" {
		if hasBins(d) {
			return d, nil
		}
		return "", fmt.Errorf("PGBIN=%s does not contain initdb and postgres", d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if hasBins(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if hasBins(d) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries found: install postgresql (apt-get install postgresql), set PGBIN to the directory holding initdb and postgres, or pass --database-url")
}

func versionOf(dir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	return v
}

func hasBins(d string) bool {
	for _, b := range []string{"initdb", "postgres"} {
		if st, err := os.Stat(filepath.Join(d, b)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// runAs returns the credential to run PostgreSQL with (nil when not root).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		u, err = user.Lookup("bitkit-pg")
	}
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "bitkit-pg").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs a non-root user: useradd bitkit-pg: %v: %s", err, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup("bitkit-pg"); err != nil {
			return nil, err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownTree(root string, c *syscall.Credential) error {
	if c == nil {
		return nil
	}
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(c.Uid), int(c.Gid))
	})
}

// allowTraverse adds the search (x) bit for others on dir and its ancestors
// that this process owns, so the unprivileged PostgreSQL user can reach dir.
// It only matters when running as root.
func allowTraverse(dir string, c *syscall.Credential) {
	if c == nil {
		return
	}
	for d := dir; ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == os.Geteuid() && st.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, st.Mode().Perm()|0o001)
			}
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start initialises dir (when needed) and starts PostgreSQL, waiting until
// it accepts connections. logw receives the server's output.
func Start(ctx context.Context, dir string, logFile string) (*Cluster, error) {
	return StartOnPort(ctx, dir, logFile, 0)
}

// StartOnPort is Start on a given loopback port (0: a free one), e.g. to
// start a stopped cluster again where its clients expect it.
func StartOnPort(ctx context.Context, dir string, logFile string, port int) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	allowTraverse(filepath.Dir(dir), cred)
	pwfile := filepath.Join(dir, ".pwfile")
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		_ = os.RemoveAll(data)
		if err := os.WriteFile(pwfile, []byte(secret.RandomBase62(32)+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := chownTree(dir, cred); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "bitkit", "--pwfile", pwfile,
			"--auth-local", "scram-sha-256", "--auth-host", "scram-sha-256", "-E", "UTF8", "--no-instructions")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.RemoveAll(data)
			return nil, fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	pwb, err := os.ReadFile(pwfile)
	if err != nil {
		return nil, fmt.Errorf("read cluster password file: %w", err)
	}
	pw := strings.TrimSpace(string(pwb))
	// Written at every start, so a cluster made by an older bitd is locked
	// down too.
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(HBA("bitkit")), 0o600); err != nil {
		return nil, fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if err := chownTree(dir, cred); err != nil {
		return nil, fmt.Errorf("chown %s: %w", dir, err)
	}
	// A previous bitd that was killed may have left a postmaster running.
	if pid := stalePid(data); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGINT)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	sockDir := filepath.Join(dir, "sock")
	if err := os.MkdirAll(sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", sockDir, err)
	}
	if err := os.Chmod(sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", sockDir, err)
	}
	_ = chownTree(sockDir, cred)
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+sockDir, "-c", "unix_socket_permissions=0700",
		"-c", "max_connections=300")
	cmd.Stdout, cmd.Stderr = lf, lf
	// Setpgid keeps a Ctrl-C in the terminal away from postgres (bitd stops
	// it itself); Pdeathsig asks for a fast shutdown if bitd dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{Dir: data, Port: port, SocketDir: sockDir, cmd: cmd, done: make(chan struct{}), cred: cred, bin: bin}
	go func() { _ = cmd.Wait(); lf.Close(); close(c.done) }()
	u := url.URL{Scheme: "postgres", User: url.UserPassword("bitkit", pw), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	c.URL = u.String()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL)
		if err == nil {
			conn.Close(ctx)
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("postgres exited during start-up; see %s", logFile)
		case <-ctx.Done():
			c.Stop(10 * time.Second)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop(10 * time.Second)
			return nil, fmt.Errorf("postgres did not accept connections within 60s; see %s", logFile)
		}
	}
}

func stalePid(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	// Only signal it if it really is a postgres for this data directory.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), "postgres") {
		return 0
	}
	return pid
}

// Stop asks PostgreSQL for a fast shutdown (SIGINT) and waits up to timeout,
// then kills it.
func (c *Cluster) Stop(timeout time.Duration) {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Pid is the postmaster's process id.
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }
