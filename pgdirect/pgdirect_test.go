package pgdirect_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/pgdirect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	shared *bitdtest.Server
)

// bitd returns a bitd shared by the tests that need no special flags. It is
// stopped by the first test's cleanup only after all tests end, because
// parallel tests wait for their parent.
func sharedBitd(t *testing.T) *bitdtest.Server {
	t.Helper()
	if shared == nil {
		t.Fatal("sharedBitd called outside TestShared")
	}
	return shared
}

// createDB creates a database over the HTTP API and returns its full name.
func createDB(t *testing.T, s *bitdtest.Server, key string) string {
	t.Helper()
	name := bitdtest.UniqueName("pgd")
	var out struct {
		Name string `json:"name"`
	}
	apiCall(t, s, key, http.MethodPost, "/v2beta/db/", map[string]any{"name": name}, &out)
	if !strings.HasSuffix(out.Name, "/"+name) {
		t.Fatalf("created database %q, want .../%s", out.Name, name)
	}
	return out.Name
}

func apiCall(t *testing.T, s *bitdtest.Server, key, method, path string, body any, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := jsonx.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.Endpoint+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := jsonx.Unmarshal(b, out); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
	}
}

func newClient(t *testing.T, s *bitdtest.Server, key string, opts ...pgdirect.Option) *pgdirect.Client {
	t.Helper()
	// These servers run without --tls: their proxy's certificate is
	// self-signed, so the tests ask for "require" by name
	// (tls_test.go verifies against the dev CA).
	c, err := pgdirect.New(t.Context(), key, append([]pgdirect.Option{pgdirect.WithAddr(s.PGAddr), pgdirect.WithSSLMode("require")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func countRows(t *testing.T, c *pgdirect.Client, db, body string) int {
	t.Helper()
	var n int
	err := c.WithConn(t.Context(), db, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(t.Context(), "SELECT count(*) FROM notes WHERE body = $1", body).Scan(&n)
	})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func setupNotes(t *testing.T, c *pgdirect.Client, db string) {
	t.Helper()
	err := c.WithConn(t.Context(), db, func(conn *pgxpool.Conn) error {
		_, err := conn.Exec(t.Context(), "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)")
		return err
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
}

// TestShared runs the tests that share one default bitd.
func TestShared(t *testing.T) {
	shared = bitdtest.Start(t)
	if shared.PGAddr == "" {
		t.Fatalf("bitd wrote no BITKIT_PG_ADDR to demo.env")
	}
	t.Run("WithTx", testWithTx)
	t.Run("WithConnConnectPool", testWithConnConnectPool)
	t.Run("Concurrent", testConcurrent)
	t.Run("RevokeKey", testRevokeKey)
	t.Run("Errors", testErrors)
	t.Run("OtherUsersPrivateDatabase", testOtherUsersPrivateDatabase)
}

// testOtherUsersPrivateDatabase: user B's key cannot open user A's private
// database through the proxy (3D000, the same answer as for a missing one).
func testOtherUsersPrivateDatabase(t *testing.T) {
	t.Parallel()
	s := sharedBitd(t)
	db := createDB(t, s, s.APIKey)
	keyB := s.NewUser(t, bitdtest.UniqueName("userb"), "")
	c := newClient(t, s, keyB)
	err := c.WithTx(t.Context(), db, func(pgx.Tx) error { return nil })
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "3D000" {
		t.Fatalf("user B on user A's private database: %v, want 3D000", err)
	}
	conn, err := c.Connect(t.Context(), db)
	if err == nil {
		conn.Close(t.Context())
		t.Fatal("Connect succeeded for another user's private database")
	}
}

func testWithTx(t *testing.T) {
	t.Parallel()
	s := sharedBitd(t)
	c := newClient(t, s, s.APIKey)
	db := createDB(t, s, s.APIKey)
	setupNotes(t, c, db)
	insert := func(body string) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), "INSERT INTO notes (body) VALUES ($1)", body)
			return err
		}
	}
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		fn       func(body string) func(pgx.Tx) error
		wantErr  error
		panicVal any
		wantRows int
	}{
		{"commit", insert, nil, nil, 1},
		{"rollback on error", func(body string) func(pgx.Tx) error {
			return func(tx pgx.Tx) error {
				if err := insert(body)(tx); err != nil {
					return err
				}
				return errBoom
			}
		}, errBoom, nil, 0},
		{"rollback on panic", func(body string) func(pgx.Tx) error {
			return func(tx pgx.Tx) error {
				if err := insert(body)(tx); err != nil {
					return err
				}
				panic("kaboom")
			}
		}, nil, "kaboom", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := bitdtest.UniqueName("row")
			var gotPanic any
			var err error
			func() {
				defer func() { gotPanic = recover() }()
				err = c.WithTx(t.Context(), db, tc.fn(body))
			}()
			if gotPanic != tc.panicVal {
				t.Fatalf("panic = %v, want %v", gotPanic, tc.panicVal)
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("WithTx err = %v, want %v", err, tc.wantErr)
			}
			if n := countRows(t, c, db, body); n != tc.wantRows {
				t.Fatalf("rows = %d, want %d", n, tc.wantRows)
			}
		})
	}
}

func testWithConnConnectPool(t *testing.T) {
	t.Parallel()
	s := sharedBitd(t)
	c := newClient(t, s, s.APIKey, pgdirect.WithMaxConns(4))
	db := createDB(t, s, s.APIKey)
	setupNotes(t, c, db)

	conn, err := c.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var user string
	if err := conn.QueryRow(t.Context(), "SELECT current_user").Scan(&user); err != nil || user == "" {
		t.Fatalf("Connect: %q %v", user, err)
	}
	if _, err := conn.Exec(t.Context(), "INSERT INTO notes (body) VALUES ('via-connect')"); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, c, db, "via-connect"); n != 1 {
		t.Fatalf("rows = %d", n)
	}
	p, err := c.Pool(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if p.Config().MaxConns != 4 || p.Config().MinConns != 0 || p.Config().MaxConnIdleTime != 4*time.Minute {
		t.Fatalf("pool config: max %d min %d idle %s", p.Config().MaxConns, p.Config().MinConns, p.Config().MaxConnIdleTime)
	}
	p2, _ := c.Pool(t.Context(), db)
	if p2 != p {
		t.Fatal("Pool returned a second pool for the same database")
	}
	// A caller-owned pool is used as is and not closed by Close.
	host, port, _ := strings.Cut(s.PGAddr, ":")
	oc, err := pgxpool.ParseConfig(fmt.Sprintf("host=%s port=%s user=me dbname=%s sslmode=require", host, port, db))
	if err != nil {
		t.Fatal(err)
	}
	oc.ConnConfig.Password = s.APIKey
	own, err := pgxpool.NewWithConfig(t.Context(), oc)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	c2, err := pgdirect.New(t.Context(), s.APIKey, pgdirect.WithAddr(s.PGAddr), pgdirect.WithPool(db, own))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c2.Pool(t.Context(), db); got != own {
		t.Fatal("WithPool: Pool did not return the caller's pool")
	}
	c2.Close()
	if err := own.Ping(t.Context()); err != nil {
		t.Fatalf("caller-owned pool after Close: %v", err)
	}
	if _, err := c2.Pool(t.Context(), db); !errors.Is(err, pgdirect.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

func testConcurrent(t *testing.T) {
	t.Parallel()
	s := sharedBitd(t)
	c := newClient(t, s, s.APIKey, pgdirect.WithMaxConns(5))
	db := createDB(t, s, s.APIKey)
	setupNotes(t, c, db)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			errs <- c.WithTx(t.Context(), db, func(tx pgx.Tx) error {
				_, err := tx.Exec(t.Context(), "INSERT INTO notes (body) VALUES ($1)", fmt.Sprint("c", i%2))
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if a, b := countRows(t, c, db, "c0"), countRows(t, c, db, "c1"); a != 20 || b != 20 {
		t.Fatalf("rows %d+%d, want 20+20", a, b)
	}
}

func testRevokeKey(t *testing.T) {
	t.Parallel()
	s := sharedBitd(t)
	db := createDB(t, s, s.APIKey)
	key := strings.TrimSpace(s.Admin(t, "key", "create", s.User))
	c := newClient(t, s, key)
	setupNotes(t, c, db)
	conn, err := c.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	apiCall(t, s, key, http.MethodDelete, "/v2beta/api-key/?api_key="+url.QueryEscape(key), nil, nil)
	// The open session is ended by bitd: the next query gets its FATAL.
	_, err = conn.Exec(t.Context(), "SELECT 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" || !strings.Contains(pe.Message, "revoked") {
		t.Fatalf("query after revocation: %v, want FATAL 57P01 (revoked)", err)
	}
	// New work with the revoked key fails with 28P01 and never shows the key.
	err = c.WithTx(t.Context(), db, func(pgx.Tx) error { return nil })
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("WithTx with a revoked key: %v, want 28P01", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Fatalf("error shows the key: %v", err)
	}
}

func testErrors(t *testing.T) {
	t.Parallel()
	s := sharedBitd(t)
	for _, tc := range []struct {
		name, key, db, code string
		opts                []pgdirect.Option
	}{
		{"wrong key", "v2_" + strings.Repeat("x", 43), "", "28P01", nil},
		{"unknown database", s.APIKey, s.User + "/nope", "3D000", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, s, tc.key, tc.opts...)
			db := tc.db
			if db == "" {
				db = s.User + "/whatever"
			}
			err := c.WithConn(t.Context(), db, func(*pgxpool.Conn) error { return nil })
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("err = %v, want SQLSTATE %s", err, tc.code)
			}
			if strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		opts []pgdirect.Option
		key  string
		want string
	}{
		{"empty key", nil, "", "empty API key"},
		{"bad addr", []pgdirect.Option{pgdirect.WithAddr("nohostport")}, "k", "want host:port"},
		{"bad sslmode", []pgdirect.Option{pgdirect.WithSSLMode("prefer")}, "k", `use "verify-full" (the default), "require" (no certificate check) or "disable"`},
		{"min above max", []pgdirect.Option{pgdirect.WithMaxConns(2), pgdirect.WithMinConns(3)}, "k", "exceeds MaxConns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pgdirect.NewConfig(tc.key, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewConfig: %v, want %q", err, tc.want)
			}
		})
	}
}
