// Package pgtest gives tests platform databases provisioned exactly as bitd
// provisions them: a store.Store opened on a throwaway metadata database
// (store.Open, so the real migrations run), and databases created through
// store.CreateDatabase (so the real provisioning runs: NOINHERIT login roles
// for the owner, writers, readers and public readers with passwords
// derived from the server secret, CONNECT and schema privileges, default
// privileges on tables and sequences, the restricted functions revoked, the
// tenant group roles). Tests check the role setup production creates, not
// an approximation of it.
//
// One Cluster is opened per test binary, on first use, from
// TEST_DATABASE_URL (a superuser URL; scripts/pg-up.sh starts one), and
// reused by every test; a test asks for a fresh database with New (dropped
// when the test ends), or the tests of a package share a fixture built
// once over Cluster.Create (Shared). TestMain closes the shared fixtures
// and drops what is left:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// or, when it has its own teardown, calls Teardown after m.Run.
//
// A command (a benchmark) uses Open and Close directly.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/jackc/pgx/v5"
)

// Cluster is a metadata store on a throwaway metadata database of the
// PostgreSQL cluster named by AdminURL, with one account that the
// databases it creates belong to.
type Cluster struct {
	// Store is the metadata store (Store.DB is the metadata database pool,
	// where the job queue runs its migrations too).
	Store *store.Store
	// AdminURL is the cluster admin URL (its database is the maintenance
	// database).
	AdminURL string
	// Secret is the server secret the role passwords derive from
	// (secret.RolePassword).
	Secret []byte
	// TenantAddr is where tenant roles log in, found as bitd finds it
	// (pgaddr.Tenant): the cluster's Unix socket when AdminURL is
	// loopback, since a locked-down cluster refuses them over TCP.
	TenantAddr pgaddr.Addr
	account    string
	n          atomic.Int64
	// lock holds a session advisory lock named after the metadata
	// database while the Cluster lives (see sweepStale).
	lock *pgx.Conn
}

// Open opens a Cluster: a store on a new metadata database named
// pgtest_<random> of the cluster at adminURL, with a random secret and no
// name reservation after deletes. Close drops everything it created.
// Open first drops what test processes that were killed before their
// Close (a test timeout) left behind (sweepStale).
func Open(ctx context.Context, adminURL string) (*Cluster, error) {
	meta := "pgtest_" + RandHex(6)
	lock, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to the cluster: %w", err)
	}
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", meta); err != nil {
		lock.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: lock the metadata database's name: %w", err)
	}
	sweepStale(ctx, lock, adminURL)
	sec := []byte(RandHex(32))
	st, err := store.Open(ctx, store.Options{AdminURL: adminURL, MetadataDB: meta, Secret: sec, NameReservation: -1})
	if err != nil {
		lock.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: open a metadata store: %w", err)
	}
	c := &Cluster{Store: st, AdminURL: adminURL, Secret: sec, lock: lock}
	if c.TenantAddr, err = pgaddr.Tenant(ctx, adminURL, ""); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("pgtest: find where tenant roles log in: %w", err)
	}
	u, err := st.CreateUser(ctx, "pgtest", "")
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("pgtest: create the account of the test databases: %w", err)
	}
	c.account = u.DefaultAccount.ID
	return c, nil
}

// Close drops every platform database the cluster created, with its roles,
// and the metadata database.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := c.Store.DropEverything(ctx)
	c.lock.Close(ctx) // releases the name's lock
	return err
}

// sweepStale drops the metadata databases (pgtest_*) of Clusters whose
// process ended without Close, with every platform database they
// recorded: those whose name's advisory lock (taken by Open for the
// Cluster's life) is free and that have no session. Errors are ignored:
// the next Open tries again.
func sweepStale(ctx context.Context, lock *pgx.Conn, adminURL string) {
	rows, err := lock.Query(ctx, `SELECT d.datname FROM pg_catalog.pg_database d WHERE d.datname LIKE 'pgtest\_%'
		AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.datname = d.datname)`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		var free bool
		if err := lock.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", n).Scan(&free); err != nil || !free {
			continue
		}
		if st, err := store.Open(ctx, store.Options{AdminURL: adminURL, MetadataDB: n, MustExist: true}); err == nil {
			_ = st.DropEverything(ctx)
		}
		_, _ = lock.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", n)
	}
}

// Create provisions a new platform database through store.CreateDatabase.
// Its name in the account is db<n>; Drop (or Close) removes it.
func (c *Cluster) Create(ctx context.Context) (*DB, error) {
	name := fmt.Sprintf("db%d", c.n.Add(1))
	d, err := c.Store.CreateDatabase(ctx, c.account, name, true, 0)
	if err != nil {
		return nil, fmt.Errorf("pgtest: create a platform database: %w", err)
	}
	return &DB{
		ID: d.ID, FullName: d.FullName(), Name: d.PGName,
		Owner: d.PGName + store.OwnerSuffix, Writer: d.PGName + store.WriterSuffix,
		Reader: d.PGName + store.ReaderSuffix, Public: d.PGName + store.PublicSuffix,
		Secret: c.Secret, ClusterURL: c.AdminURL, TenantAddr: c.TenantAddr, meta: d,
	}, nil
}

// Drop deletes d through store.DeleteDatabase (the database and its roles
// are dropped at once).
func (c *Cluster) Drop(ctx context.Context, d *DB) error {
	if _, err := c.Store.DeleteDatabase(ctx, d.meta); err != nil {
		return fmt.Errorf("pgtest: drop platform database %s: %w", d.Name, err)
	}
	return nil
}

// DB is one provisioned platform database.
type DB struct {
	// ID is its metadata id, FullName its "account/name".
	ID, FullName string
	// Name is the PostgreSQL database.
	Name string
	// Owner, Writer, Reader and Public are its login roles (OWNER and
	// ADMIN, WRITER, READER permissions, public readers).
	Owner, Writer, Reader, Public string
	// Secret is the server secret the role passwords derive from.
	Secret []byte
	// ClusterURL is the cluster admin URL (maintenance database).
	ClusterURL string
	// TenantAddr is where its login roles log in (Cluster.TenantAddr);
	// TenantAddr.String() is the form of proxy.WireTarget.BackendAddr.
	TenantAddr pgaddr.Addr
	meta       *store.Database
}

// Password is the password of login role role (derived from Secret).
func (d *DB) Password(role string) string { return secret.RolePassword(d.Secret, role) }

// URL is a connection string to the database as login role role with its
// password, at TenantAddr, or as the cluster admin at ClusterURL's address
// when role is "".
func (d *DB) URL(role string) string {
	u, err := url.Parse(d.ClusterURL)
	if err != nil {
		panic("pgtest: cluster URL does not parse") // Open parsed it
	}
	u.Path = "/" + d.Name
	if role == "" {
		return u.String()
	}
	u.User = url.UserPassword(role, d.Password(role))
	q := u.Query()
	if d.TenantAddr.Unix() {
		u.Host = ""
		q.Set("host", d.TenantAddr.Host)
		q.Set("port", strconv.Itoa(int(d.TenantAddr.Port)))
	} else {
		u.Host = net.JoinHostPort(d.TenantAddr.Host, strconv.Itoa(int(d.TenantAddr.Port)))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Role is the login role of permission perm ("OWNER", "ADMIN", "WRITER",
// "READER"), as store.RoleFor maps it.
func (d *DB) Role(perm string) string { return store.RoleFor(d.Name, perm) }

// Exec runs stmts in order, in the database, logged in as role (the
// cluster admin when role is ""), e.g. to create the owner's tables.
func (d *DB) Exec(ctx context.Context, role string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, d.URL(role))
	if err != nil {
		return fmt.Errorf("pgtest: connect to %s as %q: %w", d.Name, role, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("pgtest: %s: %w", q, err)
		}
	}
	return nil
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// Get returns the test binary's Cluster, opened on first use on
// TEST_DATABASE_URL. A missing TEST_DATABASE_URL fails the test.
func Get(t testing.TB) *Cluster {
	t.Helper()
	c, err := get()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get() (*Cluster, error) {
	sharedOnce.Do(func() {
		u := os.Getenv("TEST_DATABASE_URL")
		if u == "" {
			sharedErr = errors.New("TEST_DATABASE_URL is not set: export TEST_DATABASE_URL=$(scripts/pg-up.sh)")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, sharedErr = Open(ctx, u)
	})
	return shared, sharedErr
}

// New provisions a fresh platform database for t, dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	c := Get(t)
	d, err := c.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Drop(ctx, d); err != nil {
			t.Errorf("%v (Teardown drops it at the end)", err)
		}
	})
	return d
}

// Teardown closes the test binary's Shared fixtures, then its Cluster, if
// one was opened, dropping every database it created, their roles and its
// metadata database. Call it from TestMain after m.Run.
func Teardown() {
	closeShared()
	if shared == nil {
		return
	}
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: teardown:", err)
	}
}

// Main runs the tests, tears the Cluster down and exits with the tests'
// code: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Teardown()
	os.Exit(code)
}
