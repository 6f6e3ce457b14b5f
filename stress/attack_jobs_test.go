package stress

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// Attacks on the job queue: one tenant
// starving every other tenant's jobs, a queued job outliving the key that
// created it, and an export that writes.

// startExport posts an export of query and returns the job id.
func (c *client) startExport(t testing.TB, db, query, format string) string {
	t.Helper()
	r := c.do(t, "POST", "/v2beta/db/"+db+"/export/", map[string]any{"query_string": query, "export_format": format})
	if r.Status != http.StatusAccepted || r.str("id") == "" {
		t.Fatalf("export from %s: %d %s", db, r.Status, r.Raw)
	}
	return r.str("id")
}

// jobError is the error_type and message of a FAILED job.
func jobError(r result) (typ, msg string) {
	d, _ := r.Body["error_details"].(map[string]any)
	msg, _ = d["message"].(string)
	return r.str("error_type"), msg
}

// TestAttackJobStarvation: an attacker queues more long exports than an
// account may run at once; another tenant's one-row export still finishes
// while the attacker's are running or waiting, and the attacker's exports
// end at the job statement timeout with a clear error.
func TestAttackJobStarvation(t *testing.T) {
	t.Parallel() // mostly waiting
	tried(t, "a tenant queues long exports to stall every other tenant's jobs")
	const timeout = 40 * time.Second
	s := startScanned(t, bitdtest.Args("--job-statement-timeout", timeout.String()))
	victim := newClient(s.Endpoint, s.APIKey)
	attacker, _ := otherUser(t, s, "mallory")
	adb := attacker.createDB(t, "sleepy", true)
	vdb := victim.createDB(t, "busy", true)
	victim.mustQuery(t, vdb, "create table t (id int); insert into t values (1)")

	var ids []string
	for range 4 { // twice the default per-account cap of 2
		ids = append(ids, attacker.startExport(t, adb, "select pg_sleep(120)", "csv"))
	}
	vid := victim.startExport(t, vdb, "select * from t", "csv")
	v := victim.waitJob(t, "export", vid, 2*time.Minute)
	if v.str("state") != "DONE" {
		t.Fatalf("the victim's export: %s", v.Raw)
	}
	running := 0
	for _, id := range ids {
		r := attacker.do(t, "GET", "/v2beta/export/"+id, nil)
		switch st := r.str("state"); st {
		case "PROCESSING":
			running++
		case "RECEIVED":
		default:
			t.Fatalf("an attacker's 120 s export is %s when the victim's finished: %s", st, r.Raw)
		}
	}
	if running > 2 {
		t.Fatalf("%d of the attacker's exports run at once; the per-account cap is 2", running)
	}
	record(t, "a tenant queues 4 exports of select pg_sleep(120) (2 job workers used to be all there was), then another tenant exports one row",
		fmt.Sprintf("the other tenant's export is DONE while the attacker's run (%d, the per-account cap is 2) or wait in the queue", running))

	r := attacker.waitJob(t, "export", ids[0], timeout+2*time.Minute)
	typ, msg := jobError(r)
	if r.str("state") != "FAILED" || typ != "statement_timeout" || !strings.Contains(msg, "--job-statement-timeout") {
		t.Fatalf("the attacker's long export: %s", r.Raw)
	}
	record(t, "a tenant's export runs longer than --job-statement-timeout ("+timeout.String()+" here)",
		"the job FAILS with error_type statement_timeout: "+firstLine(msg))
}

// TestAttackJobOutlivesKey: a WRITER service account's file_url import is
// under way when every key of the service account is revoked; the import
// fails with credential_revoked and writes nothing.
func TestAttackJobOutlivesKey(t *testing.T) {
	t.Parallel()
	tried(t, "a service account's queued file_url import after all its keys are revoked")
	s := startScanned(t)
	alice := newClient(s.Endpoint, s.APIKey)
	db := alice.createDB(t, "etl"+randSuffix(), true)
	alice.mustQuery(t, db, "create table landed (id int, name text)")
	r := alice.do(t, "POST", "/v2beta/service-account/", map[string]any{"name": "loader" + randSuffix(), "role": "WRITER", "databases": []string{db}})
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("create service account: %d %s", r.Status, r.Raw)
	}
	saID := fmt.Sprint(r.Body["id"])
	mint := func() string {
		r := alice.do(t, "POST", "/v2beta/service-account/"+saID+"/api-key/", nil)
		k := r.str("api_key")
		if r.Status != 200 || k == "" {
			t.Fatalf("create service-account key: %d %s", r.Status, r.Raw)
		}
		remember(k)
		return k
	}
	sa := newClient(s.Endpoint, mint())

	// the file is served only once the keys are revoked: the job is under
	// way (fetching) when its key goes
	fileURL, hit, release := bitdtest.BlockingFile(t, "rows.csv", csvRows(100))
	id := sa.startImport(t, db, "landed", nil, fileURL)
	select {
	case <-hit:
	case <-time.After(2 * time.Minute):
		t.Fatal("the import never fetched its file_url")
	}
	if r := alice.do(t, "DELETE", "/v2beta/service-account/"+saID+"/api-key/", nil); r.Status != 200 {
		t.Fatalf("revoke the service account's keys: %d %s", r.Status, r.Raw)
	}
	fresh := newClient(s.Endpoint, mint()) // a new key does not revive the old key's job
	release()
	r = fresh.waitJob(t, "import", id, 2*time.Minute)
	typ, msg := jobError(r)
	if r.str("state") != "FAILED" || typ != "credential_revoked" {
		t.Fatalf("the import of a revoked key: %s", r.Raw)
	}
	if n := alice.mustQuery(t, db, "select count(*)::int as n from landed"); !strings.Contains(string(n.Raw), "[[0]]") {
		t.Fatalf("the import of a revoked key wrote rows: %s", n.Raw)
	}
	record(t, "a WRITER service account's file_url import is under way when all its keys are revoked",
		"the job FAILS with credential_revoked before loading ("+firstLine(msg)+"); the table keeps 0 rows")
}

// TestAttackExportWrites: an export's query is pasted nowhere: a query that
// closes the COPY and commits an INSERT, and a data-modifying CTE, both
// fail with a clear error and change nothing.
func TestAttackExportWrites(t *testing.T) {
	t.Parallel()
	tried(t, "an export whose query writes")
	s := startScanned(t)
	c := newClient(s.Endpoint, s.APIKey)
	db := c.createDB(t, "ro"+randSuffix(), true)
	c.mustQuery(t, db, "create table t (id int); insert into t values (1), (2), (3)")
	for _, a := range []struct{ name, query, format, want string }{
		{"a query that closes the COPY, commits and inserts", "select 1) to stdout; commit; insert into t values (99); copy (select 2", "csv", "syntax error"},
		{"two statements", "select 1; insert into t values (99)", "json", "exactly one query"},
		{"a data-modifying CTE (csv)", "with d as (delete from t returning *) select * from d", "csv", "read-only"},
		{"a data-modifying CTE (parquet)", "with d as (delete from t returning *) select * from d", "parquet", "read-only"},
		{"UPDATE … RETURNING", "update t set id = id + 10 returning id", "csv", "read-only"},
	} {
		t.Run(a.name, func(t *testing.T) {
			id := c.startExport(t, db, a.query, a.format)
			r := c.waitJob(t, "export", id, 2*time.Minute)
			typ, msg := jobError(r)
			if r.str("state") != "FAILED" || !strings.Contains(msg, a.want) {
				t.Fatalf("export %q: %s", a.query, r.Raw)
			}
			q := c.mustQuery(t, db, "select string_agg(id::text, ',' order by id) as ids from t")
			if !strings.Contains(string(q.Raw), `"1,2,3"`) {
				t.Fatalf("the export changed the table: %s", q.Raw)
			}
			record(t, "an export of "+a.name, "the job FAILS ("+typ+": "+firstLine(msg)+"); the table is unchanged")
		})
	}
}
