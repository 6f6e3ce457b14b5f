//go:build fleet

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// csvRows is a CSV file with a header and ids from..to.
func csvRows(from, to int) string {
	var b strings.Builder
	b.WriteString("id,name\n")
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d,name-%d\n", i, i)
	}
	return b.String()
}

// importCSV posts an import of csv into db.table (with more form fields,
// name and value) through endpoint and returns the job's id.
func importCSV(t *testing.T, endpoint, key, db, table, csv string, fields ...string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("table_name", table)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	fw, _ := mw.CreateFormFile("file", table+".csv")
	_, _ = io.WriteString(fw, csv)
	_ = mw.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", endpoint+"/v2beta/db/"+db+"/import/", &body)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("import through %s: %v", endpoint, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("import through %s: %d %s", endpoint, res.StatusCode, raw)
	}
	var a answer
	a.Raw = raw
	if err := json.Unmarshal(raw, &a.Body); err != nil || a.str("id") == "" {
		t.Fatalf("import answer without an id: %s", raw)
	}
	return a.str("id")
}

// waitJob polls GET /v2beta/{kind}/{id} through endpoint until the job is
// DONE or FAILED and returns the last answer. Transport errors and 5xx
// (a replica dying under HAProxy) are retried.
func waitJob(t *testing.T, endpoint, key, kind, id string, within time.Duration) answer {
	t.Helper()
	var a answer
	testwait.Eventually(t, within, func() error {
		var err error
		a, err = callE(t.Context(), "GET", endpoint+"/v2beta/"+kind+"/"+id, key, nil)
		if err == nil && a.Status == 200 {
			if st := a.str("state"); st == "DONE" || st == "FAILED" {
				return nil
			}
		}
		return fmt.Errorf("%s job %s not finished: %v %d %s", kind, id, err, a.Status, a.Raw)
	})
	return a
}

// download GETs url and returns the body, failing unless it answers 200.
func download(t *testing.T, u string) string {
	t.Helper()
	res, err := httpClient.Get(u)
	if err != nil {
		t.Fatalf("download %s: %v", u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("download %s: %d %s", u, res.StatusCode, b)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// testAnyReplica: a database created through r1 is written through r2,
// imported into through r3 and read through HAProxy; an export created
// through HAProxy is downloaded through r1 directly and through HAProxy;
// HAProxy spreads requests over all three replicas.
func testAnyReplica(t *testing.T, f *fleet) {
	r1, r2, r3 := f.Replicas[0].S.Endpoint, f.Replicas[1].S.Endpoint, f.Replicas[2].S.Endpoint
	lb := "http://" + f.HTTP
	key := f.Key

	db := newDB(t, f, "anyrep_", r1)
	sql(t, r2, key, db, "create table notes (id int primary key, body text); insert into notes values (1, 'written through r2')")
	const n = 1000
	csv := csvRows(1, n)
	job := importCSV(t, r3, key, db, "people", csv)
	if st := waitJob(t, lb, key, "import", job, 2*time.Minute); st.str("state") != "DONE" {
		t.Fatalf("import through r3 ended %s", st.Raw)
	}
	for _, ep := range []string{lb, r1, r2, r3} {
		if got := scalar(sql(t, ep, key, db, "select count(*) from people")); got != fmt.Sprint(n) {
			t.Fatalf("through %s: %s rows imported, want %d", ep, got, n)
		}
		if got := scalar(sql(t, ep, key, db, "select body from notes where id = 1")); got != "written through r2" {
			t.Fatalf("through %s: notes holds %q", ep, got)
		}
	}

	exp := call(t, "POST", lb+"/v2beta/db/"+db+"/export/", key,
		map[string]any{"query_string": "select id, name from people order by id", "export_format": "csv"})
	if exp.Status != http.StatusAccepted {
		t.Fatalf("export through HAProxy: %d %s", exp.Status, exp.Raw)
	}
	done := waitJob(t, lb, key, "export", exp.str("id"), 2*time.Minute)
	if done.str("state") != "DONE" {
		t.Fatalf("export ended %s", done.Raw)
	}
	dl := done.str("download_url")
	if !strings.HasPrefix(dl, lb+"/") {
		t.Fatalf("download_url %q does not point at HAProxy (%s): --public-url not applied", dl, lb)
	}
	for _, u := range []string{strings.Replace(dl, lb, r1, 1), dl} {
		if got := download(t, u); got != csv {
			t.Fatalf("download %s: %d bytes, not the %d imported (start %.60q)", u, len(got), len(csv), got)
		}
	}
	if f.S3.objects(t) == 0 {
		t.Fatal("the S3 bucket is empty: the replicas did not put the upload and the export there")
	}

	seen := map[string]int{}
	for range 3 * replicaCount {
		seen[sql(t, lb, key, db, "select 1").Replica]++
	}
	for _, r := range f.Replicas {
		if seen[r.Name] == 0 {
			t.Errorf("HAProxy sent none of %d queries to %s (it answered: %v)", 3*replicaCount, r.Name, seen)
		}
	}
}

// testRevokeOnAll: a key used (and so cached) on every replica and revoked
// through r1 is refused by every replica within the access cache's bound.
func testRevokeOnAll(t *testing.T, f *fleet) {
	r1 := f.Replicas[0].S.Endpoint
	db := newDB(t, f, "revoke_", r1)
	k := call(t, "POST", r1+"/v2beta/api-key/", f.Key, nil)
	key := k.str("api_key")
	if k.Status != 200 || key == "" {
		t.Fatalf("create key: %d %s", k.Status, k.Raw)
	}
	for _, r := range f.Replicas {
		for range 2 {
			sql(t, r.S.Endpoint, key, db, "select 1")
		}
	}
	if a := call(t, "DELETE", r1+"/v2beta/api-key/?api_key="+url.QueryEscape(key), f.Key, nil); a.Status != 200 {
		t.Fatalf("revoke through r1: %d %s", a.Status, a.Raw)
	}
	revoked := time.Now()
	// The bound: a replica drops a revoked key when the NOTIFY arrives
	// (milliseconds); with its listener down it checks within 10 s
	// (docs/bitd.md, "Access cache and replicas").
	const bound = 10 * time.Second
	var worst time.Duration
	for _, r := range f.Replicas {
		eventually(t, bound, r.Name+" refuses the key revoked through r1", func() bool {
			a := call(t, "POST", r.S.Endpoint+"/v2beta/query", key, map[string]any{"database_name": db, "query_string": "select 1"})
			return a.Status == http.StatusUnauthorized
		})
		worst = max(worst, time.Since(revoked))
	}
	if a := call(t, "POST", "http://"+f.HTTP+"/v2beta/query", key, map[string]any{"database_name": db, "query_string": "select 1"}); a.Status != http.StatusUnauthorized {
		t.Fatalf("HAProxy (%s) still serves the revoked key: %d", a.Replica, a.Status)
	}
	t.Logf("all %d replicas refused the revoked key %v after the revoke answered (bound %v)", replicaCount, worst.Round(time.Microsecond), bound)
}

// wireConn opens a pgx connection through addr (HAProxy's wire port) to db.
func wireConn(ctx context.Context, addr, db, key string) (*pgx.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=fleet sslmode=disable connect_timeout=20", host, port))
	if err != nil {
		return nil, err
	}
	cfg.Database, cfg.Password = db, key
	return pgx.ConnectConfig(ctx, cfg)
}

// testCancelAcrossReplicas: a long query on a wire session that HAProxy
// placed on one replica is cancelled by a CancelRequest that HAProxy hands
// to another replica (the owner is in maintenance for new connections, so
// HAProxy cannot pick it).
func testCancelAcrossReplicas(t *testing.T, f *fleet) {
	ctx := t.Context()
	db := newDB(t, f, "cancel_")
	admins := f.clusterAdmins(t)
	conn, err := wireConn(ctx, f.PG, db, f.Key)
	if err != nil {
		t.Fatalf("connect through HAProxy's wire port %s: %v", f.PG, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	owner := f.wireOwner(t).Name
	pid, secret := conn.PgConn().PID(), conn.PgConn().SecretKey()

	query := "select pg_sleep(30) /* fleet cancel " + bitdtest.UniqueName("") + " */"
	errc := make(chan error, 1)
	go func() { _, err := conn.Exec(ctx, query); errc <- err }()
	eventually(t, 30*time.Second, "the query runs", func() bool {
		return activeCount(t, admins, query, true) == 1
	})

	f.setServer(t, "bitd_pg", owner, false)
	defer f.setServer(t, "bitd_pg", owner, true)
	before := f.stats(t)
	bitdtest.SendCancel(t, f.PG, pid, secret)
	after := f.stats(t)
	landed := ""
	for _, r := range f.Replicas {
		if after["bitd_pg/"+r.Name]["stot"] != before["bitd_pg/"+r.Name]["stot"] {
			landed = r.Name
		}
	}
	if landed == "" || landed == owner {
		t.Fatalf("HAProxy sent the cancel request to %q; the session is on %s", landed, owner)
	}
	select {
	case err := <-errc:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("the query ended with %v; want SQLSTATE 57014 (query_canceled)", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatalf("the cancel request HAProxy sent to %s did not cancel the query on %s", landed, owner)
	}
	t.Logf("session on %s, cancel request through HAProxy landed on %s: query cancelled (57014)", owner, landed)
	// The session is still usable.
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("the session after the cancel: %v", err)
	}
}
