//go:build !js

package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// frozenClock never advances: the client believes its token is still fresh,
// so only the server's 401 can make it log in again.
type frozenClock struct{ t time.Time }

func (f frozenClock) Now() time.Time { return f.t }
func (f frozenClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func TestE2E(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--token-ttl", "3s"))
	ctx := t.Context()
	c, err := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	dbName := fmt.Sprintf("e2e%d", time.Now().UnixNano()%1e9)
	db, err := c.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: dbName})
	if err != nil {
		t.Fatal(err)
	}
	full := s.User + "/" + dbName
	if db.Name != full || !db.IsPrivate || db.Role != "OWNER" {
		t.Fatalf("created %+v", db)
	}
	t.Cleanup(func() { _ = c.DeleteDatabase(context.Background(), full) })

	// The subtests share one bitd and one database; each uses its own tables.
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"values", func(t *testing.T) { e2eValues(t, c, full) }},
		{"databases", func(t *testing.T) { e2eDatabases(t, c, s.User) }},
		{"errors", func(t *testing.T) { e2eErrors(t, c, s, full) }},
		{"stream", func(t *testing.T) { e2eStream(t, c, full) }},
		{"batch", func(t *testing.T) { e2eBatch(t, c, full) }},
		{"deadline", func(t *testing.T) { e2eDeadline(t, c, full) }},
		{"accounts", func(t *testing.T) { e2eAccounts(t, c, s) }},
		{"keys", func(t *testing.T) { e2eKeys(t, c, s, full) }},
		{"password", func(t *testing.T) { e2ePassword(t, s) }},
		{"jobs", func(t *testing.T) { e2eJobs(t, c, full) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

func e2eValues(t *testing.T, c *core.Client, db string) {
	ctx := t.Context()
	num40 := "1234567890123456789012345678901234567890.0123456789"
	if _, err := c.Query(ctx, db, `CREATE TABLE vals (
		id int8, n numeric, f float8, ts timestamptz, b bytea, j jsonb, a int4[], t text)`); err != nil {
		t.Fatal(err)
	}
	_, err := c.Query(ctx, db, `INSERT INTO vals VALUES
		(9223372036854775807, `+num40+`, 'NaN', '2026-03-04 05:06:07.123456+00', '\xdeadbeef', '{"k":[1,2.5,"x"],"big":12345678901234567890}', '{1,NULL,3}', 'héllo'),
		(-9223372036854775808, -0.000000000000000000001, 'Infinity', '1999-12-31 23:59:59+00', '\x', 'null', '{}', NULL),
		(0, NULL, '-Infinity', NULL, NULL, NULL, NULL, '')`)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"rows", "objects"} {
		res, err := c.QueryWith(ctx, core.QueryRequest{Database: db, SQL: "SELECT * FROM vals ORDER BY id DESC", DataFormat: format})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 3 || len(res.Columns) != 8 || res.Columns[0].Name != "id" {
			t.Fatalf("%s: %d rows, columns %+v", format, len(res.Rows), res.Columns)
		}
		var (
			id  int64
			n   jsonx.Number
			bf  big.Float
			f   float64
			ts  time.Time
			b   []byte
			j   map[string]any
			a   []*int
			txt *string
		)
		if err := res.Scan(0, &id, &n, nil, &ts, &b, &j, &a, &txt); err != nil {
			t.Fatal(err)
		}
		if err := res.Scan(0, nil, &bf, &f, nil, nil, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if id != math.MaxInt64 || string(n) != num40 || bf.Text('f', 10) != num40 || !math.IsNaN(f) ||
			!ts.Equal(time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)) || fmt.Sprintf("%x", b) != "deadbeef" ||
			fmt.Sprint(j["big"]) != "12345678901234567890" || len(a) != 3 || a[1] != nil || *a[2] != 3 || txt == nil || *txt != "héllo" {
			t.Fatalf("%s row 0: id %d n %s bf %s f %v ts %v b %x j %v a %v txt %v", format, id, n, bf.Text('f', 10), f, ts, b, j, a, txt)
		}
		var nn *jsonx.Number
		if err := res.Scan(1, &id, &nn, &f, nil, &b, nil, nil, &txt); err != nil {
			t.Fatal(err)
		}
		if id != 0 || nn != nil || !math.IsInf(f, -1) || b != nil || txt == nil || *txt != "" {
			t.Fatalf("%s row 1: %d %v %v %v %v", format, id, nn, f, b, txt)
		}
		if err := res.Scan(2, &id, &n, &f, nil, &b, nil, nil, &txt); err != nil {
			t.Fatal(err)
		}
		if id != math.MinInt64 || n != "-0.000000000000000000001" || !math.IsInf(f, 1) || len(b) != 0 || txt != nil {
			t.Fatalf("%s row 2: %d %v %v %v %v", format, id, n, f, b, txt)
		}
		type val struct {
			ID  int64          `db:"id"`
			N   *big.Float     `db:"n"`
			F   float64        `db:"f"`
			TS  *time.Time     `db:"ts"`
			B   []byte         `db:"b"`
			J   any            `db:"j"`
			A   []*int64       `db:"a"`
			Txt *string        `db:"t"`
			X   map[string]int `db:"-"`
		}
		vals, err := core.ScanAll[val](res)
		if err != nil {
			t.Fatal(err)
		}
		if vals[0].ID != math.MaxInt64 || vals[0].N.Text('f', 10) != num40 || vals[2].TS.Year() != 1999 || vals[1].N != nil || vals[1].TS != nil {
			t.Fatalf("%s ScanAll: %+v", format, vals)
		}
	}
}

func e2eDatabases(t *testing.T, c *core.Client, user string) {
	ctx := t.Context()
	name := fmt.Sprintf("crud%d", time.Now().UnixNano()%1e9)
	pub := false
	db, err := c.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: name, IsPrivate: &pub})
	if err != nil {
		t.Fatal(err)
	}
	full := user + "/" + name
	if db.Name != full || db.IsPrivate || db.ID == "" {
		t.Fatalf("created %+v", db)
	}
	if _, err := c.CreateDatabase(ctx, core.CreateDatabaseRequest{Name: name}); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("duplicate create: %v", err)
	}
	got, err := c.GetDatabase(ctx, full)
	if err != nil || got.ID != db.ID {
		t.Fatalf("get: %+v %v", got, err)
	}
	list, err := c.ListDatabases(ctx)
	found := false
	for _, d := range list {
		found = found || d.ID == db.ID
	}
	if err != nil || !found {
		t.Fatalf("list %v lacks %s: %v", list, full, err)
	}
	newName := name + "r"
	priv := true
	up, err := c.UpdateDatabase(ctx, full, core.UpdateDatabaseRequest{Name: &newName, IsPrivate: &priv})
	if err != nil || up.Name != user+"/"+newName || !up.IsPrivate || up.ID != db.ID {
		t.Fatalf("update: %+v %v", up, err)
	}
	if err := c.DeleteDatabase(ctx, user+"/"+newName); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDatabase(ctx, user+"/"+newName); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func e2eErrors(t *testing.T, c *core.Client, s *bitdtest.Server, db string) {
	ctx := t.Context()
	_, err := c.Query(ctx, db, "SELEC 1")
	var ae *core.APIError
	if !errors.As(err, &ae) || !errors.Is(err, core.ErrBadRequest) || ae.SQLState != "42601" || ae.Position != 1 || ae.RequestID == "" {
		t.Fatalf("syntax error: %#v", err)
	}
	_, err = c.Query(ctx, db, "SELECT * FROM no_such_table")
	if !errors.As(err, &ae) || ae.SQLState != "42P01" {
		t.Fatalf("missing table: %v", err)
	}
	if _, err := c.Query(ctx, s.User+"/nosuchdb", "SELECT 1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing db: %v", err)
	}
	badKey := "v2_notAValidKey" + strings.Repeat("0", 36)
	bad, _ := core.NewClient(s.Endpoint, core.WithAPIKey(badKey))
	_, err = bad.ListDatabases(ctx)
	if !errors.Is(err, core.ErrUnauthorized) || strings.Contains(err.Error(), badKey) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := c.Query(ctx, db, "SELECT $1::int + $2::int", 40, 2); err != nil {
		t.Fatal(err)
	}
}

func e2eStream(t *testing.T, c *core.Client, db string) {
	ctx := t.Context()
	st, err := c.QueryStream(ctx, core.QueryRequest{Database: db, SQL: "SELECT g AS n, g::text || 'x' AS s FROM generate_series(1, 200000) g"})
	if err != nil {
		t.Fatal(err)
	}
	var sum, rows int64
	for row, err := range st.All() {
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var s string
		if err := row.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		sum += n
		rows++
	}
	if st.Err() != nil || rows != 200000 || sum != 200000*200001/2 || st.RowCount() != 200000 {
		t.Fatalf("rows %d sum %d count %d err %v", rows, sum, st.RowCount(), st.Err())
	}
	// Early close: break out after a few rows of a long result.
	st2, err := c.QueryStream(ctx, core.QueryRequest{Database: db, SQL: "SELECT g FROM generate_series(1, 50000000) g"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range st2.All() {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 10 {
			break
		}
	}
	// A statement error after the header arrives as an error trailer or an APIError.
	st3, err := c.QueryStream(ctx, core.QueryRequest{Database: db, SQL: "SELECT 1/(g-3) FROM generate_series(1, 5) g"})
	if err == nil {
		for range st3.All() {
		}
		err = st3.Err()
	}
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.SQLState != "22012" {
		t.Fatalf("division by zero in a stream: %v", err)
	}
}

func e2eBatch(t *testing.T, c *core.Client, db string) {
	ctx := t.Context()
	res, err := c.Batch(ctx, core.BatchRequest{Database: db, Queries: []core.Statement{
		{SQL: "CREATE TABLE bt (x int8)"},
		{SQL: "INSERT INTO bt VALUES ($1), ($2)", Params: []any{1, "9223372036854775807"}},
		{SQL: "SELECT sum(x::numeric) FROM bt"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var sum string
	if len(res) != 3 || res[1].RowCount != 2 || res[2].Scan(0, &sum) != nil || sum != "9223372036854775808" {
		t.Fatalf("batch results %d, %+v, sum %s", len(res), res, sum)
	}
	_, err = c.Batch(ctx, core.BatchRequest{Database: db, Queries: []core.Statement{
		{SQL: "INSERT INTO bt VALUES (5)"},
		{SQL: "SELECT nope FROM bt"},
	}})
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.Index == nil || *ae.Index != 1 {
		t.Fatalf("failing batch: %#v", err)
	}
	r, err := c.Query(ctx, db, "SELECT count(*) FROM bt")
	var cnt int
	if err != nil || r.Scan(0, &cnt) != nil || cnt != 2 {
		t.Fatalf("after rollback count = %d, %v", cnt, err)
	}
}

func e2eDeadline(t *testing.T, c *core.Client, db string) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := c.Query(ctx, db, "SELECT pg_sleep(30)")
	if !errors.Is(err, core.ErrTimeout) {
		t.Fatalf("err = %v, want the server's timeout (ErrTimeout) before the context ends", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the context ended first (%v): timeout_ms did not leave the server time to answer", ctx.Err())
	}
}

func e2eAccounts(t *testing.T, c *core.Client, s *bitdtest.Server) {
	ctx := t.Context()
	acct, err := c.Account(ctx)
	if err != nil || acct.Name != s.User || acct.ID == "" {
		t.Fatalf("account %+v %v", acct, err)
	}
	id, err := c.AccountID(ctx)
	if err != nil || id != acct.ID {
		t.Fatalf("default account id %q %v", id, err)
	}
	named, _ := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey), core.WithAccount(s.User))
	if id, err := named.AccountID(ctx); err != nil || id != acct.ID {
		t.Fatalf("by name: %q %v", id, err)
	}
	missing, _ := core.NewClient(s.Endpoint, core.WithAPIKey(s.APIKey), core.WithAccount("no_such_account_xyz"))
	_, err = missing.AccountID(ctx)
	if !errors.Is(err, core.ErrAccountNotFound) || !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "no_such_account_xyz") {
		t.Fatalf("unknown account: %v", err)
	}
}

func e2eKeys(t *testing.T, c *core.Client, s *bitdtest.Server, db string) {
	ctx := t.Context()
	k, err := c.CreateAPIKey(ctx)
	if err != nil || !strings.HasPrefix(k.APIKey, "v2_") || k.Username != s.User {
		t.Fatalf("key %v %v", k, err)
	}
	kc, _ := core.NewClient(s.Endpoint, core.WithAPIKey(k.APIKey))
	if _, err := kc.Query(ctx, db, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeAPIKey(ctx, k.APIKey); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Query(ctx, db, "SELECT 1"); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("revoked key: %v", err)
	}
	sa, err := c.CreateServiceAccount(ctx, core.CreateServiceAccountRequest{Name: "reporter", Role: "READER", Databases: []string{db}})
	if err != nil || sa.ID == "" || sa.Role != "READER" || len(sa.Databases) != 1 {
		t.Fatalf("service account %+v %v", sa, err)
	}
	list, err := c.ListServiceAccounts(ctx)
	if err != nil || len(list) == 0 {
		t.Fatalf("list %v %v", list, err)
	}
	got, err := c.GetServiceAccount(ctx, sa.ID)
	if err != nil || got.Name != "reporter" {
		t.Fatalf("get %+v %v", got, err)
	}
	sk, err := c.CreateServiceAccountKey(ctx, sa.ID)
	if err != nil || !strings.HasPrefix(sk.APIKey, "v2_") {
		t.Fatalf("sa key %v %v", sk, err)
	}
	sc, _ := core.NewClient(s.Endpoint, core.WithAPIKey(sk.APIKey))
	if _, err := sc.Query(ctx, db, "SELECT 1"); err != nil {
		t.Fatalf("reader query: %v", err)
	}
	if _, err := sc.Query(ctx, db, "CREATE TABLE sa_denied (x int)"); !errors.Is(err, core.ErrBadRequest) && !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("reader create table: %v", err)
	}
	if err := c.RevokeServiceAccountKeys(ctx, sa.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Query(ctx, db, "SELECT 1"); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("revoked sa key: %v", err)
	}
}

func e2ePassword(t *testing.T, s *bitdtest.Server) {
	ctx := t.Context()
	const password = "e2e-Pa55word-long-enough"
	user := fmt.Sprintf("pw%d", time.Now().UnixNano()%1e9)
	s.NewUser(t, user, password)
	cache := core.NewMemoryTokenCache()
	key := s.Endpoint + "\n" + user
	c, err := core.NewClient(s.Endpoint, core.WithCredentials(core.UsernamePassword(user, password,
		core.WithTokenCache(cache), core.WithRefreshSkew(time.Second))))
	if err != nil {
		t.Fatal(err)
	}
	acct, err := c.Account(ctx)
	if err != nil || acct.Name != user {
		t.Fatalf("account %+v %v", acct, err)
	}
	tok1, ok, _ := cache.Get(ctx, key)
	if !ok {
		t.Fatal("no cached token after the first call")
	}
	// The token lives 3s and is replaced 1s before expiry: after 2.2s the next call refreshes.
	time.Sleep(2200 * time.Millisecond)
	if _, err := c.Account(ctx); err != nil {
		t.Fatal(err)
	}
	tok2, _, _ := cache.Get(ctx, key)
	if tok2.AccessToken == tok1.AccessToken {
		t.Fatal("the token was not refreshed before expiry")
	}
	// A client whose clock is frozen never refreshes by itself: after the
	// server expires its token, a 401 makes it log in again and replay.
	fc, _ := core.NewClient(s.Endpoint, core.WithClock(frozenClock{time.Now()}),
		core.WithCredentials(core.UsernamePassword(user, password)))
	if _, err := fc.Account(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3200 * time.Millisecond)
	if _, err := fc.Account(ctx); err != nil {
		t.Fatalf("after server-side expiry: %v", err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cache.Get(ctx, key); ok {
		t.Fatal("token cached after Logout")
	}
	wrong, _ := core.NewClient(s.Endpoint, core.WithCredentials(core.UsernamePassword(user, "wrong-password-123")))
	_, err = wrong.Account(ctx)
	if !errors.Is(err, core.ErrUnauthorized) || strings.Contains(err.Error(), "wrong-password-123") || strings.Contains(err.Error(), password) {
		t.Fatalf("wrong password: %v", err)
	}
}

func e2eJobs(t *testing.T, c *core.Client, db string) {
	ctx := t.Context()
	var csv bytes.Buffer
	csv.WriteString("id,name,price\n")
	for i := range 5000 {
		fmt.Fprintf(&csv, "%d,item %d,%d.25\n", i, i, i)
	}
	var polls int
	var sent int64
	job, err := c.Import(ctx, db, core.ImportRequest{Table: "imported", InferHeader: "first_row",
		File: bytes.NewReader(csv.Bytes()), FileName: "items.csv", Size: int64(csv.Len()),
		OnUpload: func(s, _ int64) { sent = s }}, func(*core.Job) { polls++ })
	if err != nil {
		t.Fatal(err)
	}
	if job.State != core.JobDone || polls == 0 || sent != int64(csv.Len()) {
		t.Fatalf("import job %+v after %d progress calls, %d bytes sent", job, polls, sent)
	}
	res, err := c.Query(ctx, db, "SELECT count(*), max(name) FROM imported")
	var n int64
	var maxName string
	if err != nil || res.Scan(0, &n, &maxName) != nil || n != 5000 || maxName != "item 999" {
		t.Fatalf("imported rows %d %q %v", n, maxName, err)
	}

	exp, err := c.Export(ctx, db, core.ExportRequest{Query: "SELECT id, name FROM imported WHERE id < 3 ORDER BY id", Format: "csv", FileName: "out.csv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exp.State != core.JobDone || exp.DownloadURL == "" {
		t.Fatalf("export job %+v", exp)
	}
	var out bytes.Buffer
	nb, err := c.Download(ctx, exp, &out)
	if err != nil || nb != int64(out.Len()) || !strings.Contains(out.String(), "item 2") || strings.Contains(out.String(), "item 3") {
		t.Fatalf("download %d bytes %q %v", nb, out.String(), err)
	}

	// A file that cannot be parsed makes the job FAIL.
	_, err = c.Import(ctx, db, core.ImportRequest{Table: "broken", File: strings.NewReader("{not json"), FileName: "broken.json"}, nil)
	var jf *core.JobFailedError
	if !errors.As(err, &jf) || jf.Job.State != core.JobFailed || jf.Job.ErrorType == "" || !strings.Contains(err.Error(), jf.Job.ErrorType) {
		t.Fatalf("broken import: %v", err)
	}
}

// TestE2ELoginSingleFlight: 100 goroutines calling through a client whose
// token has just expired cause exactly one refresh (with the refresh token,
// not another login), counted by the server (in bitd's own access log, on a
// bitd of this test alone).
func TestE2ELoginSingleFlight(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--token-ttl", "3s"))
	ctx := t.Context()
	const password = "single-flight-Pa55word"
	user := fmt.Sprintf("sf%d", time.Now().UnixNano()%1e9)
	s.NewUser(t, user, password)
	c, err := core.NewClient(s.Endpoint, core.WithCredentials(core.UsernamePassword(user, password,
		core.WithRefreshSkew(time.Second))))
	if err != nil {
		t.Fatal(err)
	}
	count := func(path string) int {
		n := 0
		for _, line := range strings.Split(s.Logs(), "\n") {
			if strings.Contains(line, "path="+path) && strings.Contains(line, "status=200") {
				n++
			}
		}
		return n
	}
	// bitd writes its access log in batches (within 100 ms): wait for
	// the count to reach want, then compare.
	atLeast := func(path string, want int) int {
		var n int
		_ = testwait.Wait(ctx, 5*time.Second, func() error {
			if n = count(path); n < want {
				return errors.New("not yet")
			}
			return nil
		})
		return n
	}
	loginsAtLeast := func(want int) int { return atLeast("/auth/v1/login", want) }
	if _, err := c.Account(ctx); err != nil {
		t.Fatal(err)
	}
	if n := loginsAtLeast(1); n != 1 {
		t.Fatalf("first call: the server saw %d logins, want 1", n)
	}
	// The token lives 3 s and is refreshed 1 s before expiry: after 2.2 s it is due.
	time.Sleep(2200 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Account(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := atLeast("/auth/v1/refresh", 1); n != 1 {
		t.Fatalf("100 concurrent calls on an expiring token: the server saw %d refreshes, want 1", n)
	}
	if n := count("/auth/v1/login"); n != 1 {
		t.Fatalf("100 concurrent calls on an expiring token: the server saw %d logins in all, want 1 (the session is refreshed, not logged in again)", n)
	}
}
