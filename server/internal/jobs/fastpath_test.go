package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// The upload fast path (fastpath.go): a plain CSV file is loaded while it
// streams in, speculating on the types of its first MiB, and committed only
// when the whole-file inference agrees. These tests check that it is taken
// (through the service's test signals, not timing), that every file ends
// exactly as the job path would have left it, and that an upload that
// stops leaves nothing behind.

// startImportFileFirst posts a multipart import whose file part comes
// before the form fields: the fast path cannot know the table while the
// file streams, so the job path loads it (the reference result).
func (e *env) startImportFileFirst(t *testing.T, user string, fields map[string]string, fileName string, file []byte) job {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", fileName)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(file)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	code, b := e.do(t, user, "POST", "/v2beta/db/acct/db/import/", mw.FormDataContentType(), &buf)
	if code != http.StatusAccepted {
		t.Fatalf("import: %d %s", code, b)
	}
	var j job
	if err := jsonx.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// sameTable fails unless tables a and b have the same column names and
// types and the same rows (as multisets).
func (e *env) sameTable(t *testing.T, a, b string) {
	t.Helper()
	if ca, cb := e.columns(t, a), e.columns(t, b); fmt.Sprint(ca) != fmt.Sprint(cb) {
		t.Fatalf("columns differ:\n%s: %v\n%s: %v", a, ca, b, cb)
	}
	got := joinRows(e.text(t, fmt.Sprintf(`SELECT (SELECT count(*) FROM (TABLE %[1]s EXCEPT ALL TABLE %[2]s) x),
		(SELECT count(*) FROM (TABLE %[2]s EXCEPT ALL TABLE %[1]s) y), (SELECT count(*) FROM %[1]s)`, a, b)))
	if !strings.HasPrefix(got, "0|0|") {
		t.Fatalf("rows of %s and %s differ (only in a | only in b | rows): %s", a, b, got)
	}
}

// sameFailure imports file through the job path (file part first) and
// requires the same error as the FAILED job j.
func (e *env) sameFailure(t *testing.T, user string, j job, table, fileName string, file []byte) {
	t.Helper()
	ref := e.startImportFileFirst(t, user, map[string]string{"table_name": table}, fileName, file)
	ref = e.wait(t, user, "import", ref.ID)
	if ref.State != StateFailed || deref(ref.ErrorType) != deref(j.ErrorType) || fmt.Sprint(ref.ErrorDetails) != fmt.Sprint(j.ErrorDetails) {
		t.Errorf("job path: %s %s %v; after the fast path: %s %s %v", ref.State, deref(ref.ErrorType), ref.ErrorDetails,
			j.State, deref(j.ErrorType), j.ErrorDetails)
	}
}

// genCSV writes a header and n rows, row i (1-based) from line(i).
func genCSV(header string, n int, line func(i int) string) []byte {
	var b bytes.Buffer
	b.WriteString(header + "\n")
	for i := 1; i <= n; i++ {
		b.WriteString(line(i))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestFastPathPlain(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	const n = 200000
	data := genCSV("id,name,amount,day,at", n, func(i int) string {
		return strconv.Itoa(i) + ",name " + strconv.Itoa(i%977) + "," + strconv.Itoa(i%1000) + ".25,2024-01-" +
			fmt.Sprintf("%02d", 1+i%28) + "," + "2024-02-03T04:05:06Z"
	})
	code, j, b := e.startImport(t, "owner", map[string]string{"table_name": "fast_plain"}, "p.csv", data)
	if code != http.StatusAccepted {
		t.Fatalf("import: %d %s", code, b)
	}
	// The job is DONE in the 202 itself: it was loaded during the upload.
	if j.State != StateDone || j.Progress.Rows != n || j.Progress.BytesDone != int64(len(data)) ||
		j.Progress.BytesTotal != int64(len(data)) || j.DateFinished == nil || j.Retries != 0 {
		t.Fatalf("202 job = %+v", j)
	}
	if o := e.fastOutcome(j.ID); o != "loaded" {
		t.Fatalf("fast path outcome %q, want loaded", o)
	}
	if got := e.wait(t, "owner", "import", j.ID); got.State != StateDone || got.Progress.Rows != n {
		t.Fatalf("GET job = %+v", got)
	}
	want := "[[id integer] [name text] [amount numeric] [day date] [at timestamp with time zone]]"
	if got := fmt.Sprint(e.columns(t, "fast_plain")); got != want {
		t.Fatalf("columns %s, want %s (whole numbers are integer from the first row)", got, want)
	}
	if got := joinRows(e.text(t, "SELECT count(*), count(DISTINCT id), sum(id) FROM fast_plain")); got != fmt.Sprintf("%d|%d|%d\n", n, n, n*(n+1)/2) {
		t.Fatalf("rows: %s", got)
	}
	// The job row keeps the load's transaction id; the upload is deleted and
	// so is the recovery river job.
	var xid *string
	var riverJobs int
	if err := e.meta.QueryRow(t.Context(), "SELECT load_xid FROM bitkit_jobs WHERE id = $1", j.ID).Scan(&xid); err != nil || xid == nil {
		t.Fatalf("load_xid = %v, %v", xid, err)
	}
	if err := e.meta.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE args->>'job_id' = $1", j.ID).Scan(&riverJobs); err != nil || riverJobs != 0 {
		t.Fatalf("river jobs left: %d, %v", riverJobs, err)
	}
	if ok, err := e.bucket.Exists(t.Context(), uploadKey(j.ID)); err != nil || ok {
		t.Fatalf("upload still in the blob store: %v %v", ok, err)
	}
	// The same file through the job path gives the same table.
	ref := e.startImportFileFirst(t, "owner", map[string]string{"table_name": "fast_plain_ref"}, "p.csv", data)
	if ref = e.wait(t, "owner", "import", ref.ID); ref.State != StateDone {
		t.Fatalf("reference import: %+v", ref)
	}
	if o := e.fastOutcome(ref.ID); o != "" {
		t.Fatalf("fields after the file: fast path %q, want none", o)
	}
	e.sameTable(t, "fast_plain", "fast_plain_ref")

	// A small file (under the early-profile threshold) takes it too.
	code, j, b = e.startImport(t, "owner", map[string]string{"table_name": "fast_small", "infer_header": "no_header"}, "s.csv", []byte("1,a\n2,b\n"))
	if code != http.StatusAccepted || j.State != StateDone || e.fastOutcome(j.ID) != "loaded" {
		t.Fatalf("small import: %d %+v %s outcome %q", code, j, b, e.fastOutcome(j.ID))
	}
	if got := joinRows(e.text(t, "SELECT col_1, col_2 FROM fast_small ORDER BY 1")); got != "1|a\n2|b\n" {
		t.Fatalf("small rows: %s", got)
	}
}

// TestFastPathLateChanges feeds files whose late rows change the plan the
// first MiB suggested; each must end with the whole-file types and every
// row, exactly as the job path loads it.
func TestFastPathLateChanges(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	const n = 300000
	cases := []struct {
		name    string
		rows    int
		line    func(i int) string
		outcome string // loaded (widened in place) or fallback (the job path reloads)
		types   string
	}{
		{"integer_exceeded_at_900k", 1000000, func(i int) string {
			if i == 900000 {
				return "3000000000,x"
			}
			return strconv.Itoa(i%100) + ",x"
		}, "loaded", "[[val bigint] [txt text]]"},
		{"empty_then_numeric", n, func(i int) string {
			if i < n/2 {
				return strconv.Itoa(i) + ","
			}
			return strconv.Itoa(i) + "," + strconv.Itoa(i%7)
		}, "loaded", "[[val integer] [txt integer]]"},
		{"int_then_decimal", n, func(i int) string {
			if i == n-5 {
				return "2.5,x"
			}
			return strconv.Itoa(i%50) + ",x"
		}, "loaded", "[[val numeric] [txt text]]"},
		{"date_then_timestamp", n, func(i int) string {
			if i > n-10 {
				return "2024-01-02 03:04:05,x"
			}
			return "2024-01-02,x"
		}, "loaded", "[[val timestamp without time zone] [txt text]]"},
		{"int_then_text", n, func(i int) string {
			if i == n-1 {
				return "n/a,x"
			}
			return strconv.Itoa(i%50) + ",x"
		}, "fallback", "[[val text] [txt text]]"},
		{"int_then_float", n, func(i int) string {
			if i == n-1 {
				return "1e5,x"
			}
			return strconv.Itoa(i%50) + ",x"
		}, "fallback", "[[val double precision] [txt text]]"},
		{"late_quotes", n, func(i int) string {
			if i == n-1 {
				return `7,"a,b"`
			}
			return strconv.Itoa(i%50) + ",x"
		}, "fallback", "[[val integer] [txt text]]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			data := genCSV("val,txt", c.rows, c.line)
			table := "late_" + c.name
			code, j, b := e.startImport(t, "owner", map[string]string{"table_name": table}, "l.csv", data)
			if code != http.StatusAccepted {
				t.Fatalf("import: %d %s", code, b)
			}
			if o := e.fastOutcome(j.ID); o != c.outcome {
				t.Errorf("fast path outcome %q, want %q", e.fastReason(j.ID), c.outcome)
			}
			j = e.wait(t, "owner", "import", j.ID)
			if j.State != StateDone || j.Progress.Rows != int64(c.rows) {
				t.Fatalf("job = %+v %v", j, j.ErrorDetails)
			}
			if got := fmt.Sprint(e.columns(t, table)); got != c.types {
				t.Errorf("columns %s, want %s", got, c.types)
			}
			ref := e.startImportFileFirst(t, "owner", map[string]string{"table_name": table + "_ref"}, "l.csv", data)
			if ref = e.wait(t, "owner", "import", ref.ID); ref.State != StateDone {
				t.Fatalf("reference import: %+v", ref)
			}
			e.sameTable(t, table, table+"_ref")
		})
	}
}

func TestFastPathLateErrors(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	const n = 300000
	t.Run("ragged_row", func(t *testing.T) {
		t.Parallel()
		data := genCSV("a,b", n, func(i int) string {
			if i == 250000 {
				return "1,2,3"
			}
			return strconv.Itoa(i%100) + ",x"
		})
		j := e.importFailed(t, "owner", map[string]string{"table_name": "late_ragged"}, "r.csv", data, "ragged_row")
		if j.ErrorDetails["line"] != float64(250001) || j.ErrorDetails["fields"] != float64(3) {
			t.Errorf("details = %v", j.ErrorDetails)
		}
		e.sameFailure(t, "owner", j, "late_ragged", "r.csv", data)
		if o := e.fastOutcome(j.ID); o != "fallback" {
			t.Errorf("fast path outcome %q, want fallback", e.fastReason(j.ID))
		}
		if e.tableExists(t, "late_ragged") {
			t.Error("a failed import left its table")
		}
	})
	t.Run("append_bad_value", func(t *testing.T) {
		t.Parallel()
		e.importOK(t, "owner", map[string]string{"table_name": "late_app"}, "a.csv", []byte("id,name\n1000000,a\n"))
		data := genCSV("id,name", n, func(i int) string {
			if i == 250000 {
				return "six,x"
			}
			return strconv.Itoa(i) + ",x"
		})
		j := e.importFailed(t, "writer", map[string]string{"table_name": "late_app"}, "b.csv", data, "type_mismatch")
		if j.ErrorDetails["row"] != float64(250000) || j.ErrorDetails["column"] != "id" || j.ErrorDetails["value"] != "six" {
			t.Errorf("details = %v", j.ErrorDetails)
		}
		e.sameFailure(t, "writer", j, "late_app", "b.csv", data)
		if o := e.fastOutcome(j.ID); o != "fallback" {
			t.Errorf("fast path outcome %q, want fallback", e.fastReason(j.ID))
		}
		if got := joinRows(e.text(t, "SELECT count(*) FROM late_app")); got != "1\n" {
			t.Errorf("a failed append left rows: %s", got)
		}
	})
	t.Run("permission", func(t *testing.T) {
		t.Parallel()
		j := e.importFailed(t, "reader", map[string]string{"table_name": "late_perm"}, "p.csv", []byte("a\n1\n"), "permission_denied")
		if o := e.fastOutcome(j.ID); o != "fallback" {
			t.Errorf("fast path outcome %q, want fallback", e.fastReason(j.ID))
		}
	})
}

func TestFastPathAppend(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	j := e.importOK(t, "owner", map[string]string{"table_name": "fast_app"}, "a.csv", []byte("id,name\n0,zero\n100000,big\n"))
	if o := e.fastOutcome(j.ID); o != "loaded" {
		t.Fatalf("create: fast path outcome %q", o)
	}
	// The file's own inferred types may differ from the table's, but
	// appending only uses the table's: no fallback, no ALTER.
	const n = 100000
	data := genCSV("NAME,id", n, func(i int) string { return "n" + strconv.Itoa(i) + "," + strconv.Itoa(i) })
	code, j, b := e.startImport(t, "writer", map[string]string{"table_name": "fast_app"}, "b.csv", data)
	if code != http.StatusAccepted || j.State != StateDone || j.Progress.Rows != n {
		t.Fatalf("append: %d %+v %s", code, j, b)
	}
	if o := e.fastOutcome(j.ID); o != "loaded" {
		t.Fatalf("append: fast path outcome %q", e.fastReason(j.ID))
	}
	if got := fmt.Sprint(e.columns(t, "fast_app")); got != "[[id integer] [name text]]" {
		t.Errorf("an append changed the table: %s", got)
	}
	if got := joinRows(e.text(t, "SELECT count(*), sum(id), max(name) FILTER (WHERE id = 7) FROM fast_app")); got != fmt.Sprintf("%d|%d|n7\n", n+2, n*(n+1)/2+100000) {
		t.Fatalf("rows after the append: %s", got)
	}
}

// openSessions counts the target database's sessions that are inside a
// transaction and whose last statement names table.
func (e *env) openSessions(t *testing.T, table string) int {
	t.Helper()
	var n int
	err := e.admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
		AND xact_start IS NOT NULL AND query LIKE '%' || $2 || '%'`, e.targetDB, table).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFastPathClientDisconnect cuts an upload off while its COPY runs: the
// transaction is rolled back, no table and no job are left.
func TestFastPathClientDisconnect(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	const table = "fast_disconnect"
	up := e.streamImport(t, "owner", table, "d.csv")
	if _, err := up.file.Write(genCSV("id,name", 200000, func(i int) string { return strconv.Itoa(i) + ",x" })); err != nil {
		t.Fatal(err)
	}
	e.waitSessions(t, table, true, "the fast path's COPY never started")
	up.pw.CloseWithError(errors.New("client gone"))
	up.cancel()
	if a := <-up.answered; a.err == nil {
		t.Fatalf("request: the cut-off upload was answered: %d %s", a.code, a.body)
	}
	e.waitSessions(t, table, false, "the fast path's transaction is still open after the client left")
	if e.tableExists(t, table) {
		t.Fatal("a cut-off upload left its table")
	}
	var jobs int
	if err := e.meta.QueryRow(t.Context(), "SELECT count(*) FROM bitkit_jobs WHERE params->>'table_name' = $1", table).Scan(&jobs); err != nil || jobs != 0 {
		t.Fatalf("jobs recorded for a cut-off upload: %d %v", jobs, err)
	}
}

// streamedImport is an import request whose body the test writes as it
// goes: the table_name field is sent, then file takes the file's bytes.
type streamedImport struct {
	pw       *io.PipeWriter
	mw       *multipart.Writer
	file     io.Writer
	cancel   context.CancelFunc
	answered chan streamedAnswer
}

type streamedAnswer struct {
	code int
	body []byte
	err  error
}

func (e *env) streamImport(t *testing.T, user, table, fileName string) *streamedImport {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v2beta/db/acct/db/import/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-User", user)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	up := &streamedImport{pw: pw, mw: mw, cancel: cancel, answered: make(chan streamedAnswer, 1)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			up.answered <- streamedAnswer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		up.answered <- streamedAnswer{code: resp.StatusCode, body: b}
	}()
	_ = mw.WriteField("table_name", table)
	if up.file, err = mw.CreateFormFile("file", fileName); err != nil {
		t.Fatal(err)
	}
	return up
}

// finish ends the body and returns the answer.
func (up *streamedImport) finish() streamedAnswer {
	_ = up.mw.Close()
	_ = up.pw.Close()
	return <-up.answered
}

// waitSessions waits (at most a minute) until a backend is (open) or is no
// longer (!open) working on table, and fails with msg otherwise.
func (e *env) waitSessions(t *testing.T, table string, open bool, msg string) {
	t.Helper()
	testwait.Eventually(t, time.Minute, func() error {
		if (e.openSessions(t, table) != 0) != open {
			return errors.New(msg)
		}
		return nil
	})
}

// TestFastPathCrashWindows stops the fast path where a bitd killed between
// recording the job and finishing it would stop: before the commit (the
// load's transaction is rolled back, as PostgreSQL does when the
// connection dies) and after it (the job is not yet DONE). The job's river
// run settles both through pg_xact_status: every row exactly once.
func TestFastPathCrashWindows(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	const n = 50000
	data := genCSV("id,name", n, func(i int) string { return strconv.Itoa(i) + ",n" + strconv.Itoa(i) })
	for _, c := range []struct {
		point   string
		retries int // an attempt that died before its commit counts as a retry
	}{{"before_commit", 1}, {"after_commit", 0}} {
		t.Run(c.point, func(t *testing.T) {
			t.Parallel()
			table := "crash_" + c.point
			e.crash.Store(table, c.point)
			code, j, b := e.startImport(t, "owner", map[string]string{"table_name": table}, "c.csv", data)
			if code != http.StatusAccepted || j.State != StateProcessing {
				t.Fatalf("import: %d %s", code, b)
			}
			j = e.wait(t, "owner", "import", j.ID)
			if j.State != StateDone || j.Progress.Rows != n || j.Retries != c.retries {
				t.Fatalf("job = %+v %v", j, j.ErrorDetails)
			}
			if got := joinRows(e.text(t, "SELECT count(*), count(DISTINCT id) FROM "+table)); got != fmt.Sprintf("%d|%d\n", n, n) {
				t.Fatalf("rows: %s, want %d exactly once", got, n)
			}
		})
	}
}

// TestFastPathFieldsAfterFile sends a field that changes the import after
// the file part: the speculation (made with the default) is rolled back
// and the job path loads the file with the field.
func TestFastPathFieldsAfterFile(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("table_name", "fast_late_field")
	fw, _ := mw.CreateFormFile("file", "f.csv")
	_, _ = fw.Write([]byte("a,b\n1,2\n"))
	_ = mw.WriteField("infer_header", "no_header")
	_ = mw.Close()
	code, b := e.do(t, "owner", "POST", "/v2beta/db/acct/db/import/", mw.FormDataContentType(), &buf)
	var j job
	if code != http.StatusAccepted || jsonx.Unmarshal(b, &j) != nil {
		t.Fatalf("import: %d %s", code, b)
	}
	if o := e.fastOutcome(j.ID); o != "fallback" {
		t.Errorf("fast path outcome %q, want fallback", e.fastReason(j.ID))
	}
	if j = e.wait(t, "owner", "import", j.ID); j.State != StateDone || j.Progress.Rows != 2 {
		t.Fatalf("job = %+v", j)
	}
	if got := joinRows(e.text(t, "SELECT col_1, col_2 FROM fast_late_field ORDER BY 1")); got != "1|2\na|b\n" {
		t.Fatalf("rows: %s", got)
	}
}

// TestFastPathSlowUpload: an upload slower than fastMaxOpen loses its fast
// path (the transaction is rolled back while the upload still streams) and
// the job path loads the file. Not parallel: it shortens fastMaxOpen, which
// every upload reads, and parallel tests only start after this one.
func TestFastPathSlowUpload(t *testing.T) {
	saved := fastMaxOpen
	fastMaxOpen = 500 * time.Millisecond
	defer func() { fastMaxOpen = saved }()
	e := getEnv(t)
	const table, n = "fast_slow", 100000
	data := genCSV("id,name", n, func(i int) string { return strconv.Itoa(i) + ",slow " + strconv.Itoa(i) })
	up := e.streamImport(t, "owner", table, "slow.csv")
	half := len(data) / 2
	if _, err := up.file.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	// The COPY runs, then the upload stalls past fastMaxOpen: the fast
	// path's transaction must end while the request is still open.
	e.waitSessions(t, table, true, "the fast path's COPY never started")
	e.waitSessions(t, table, false, "the fast path kept its transaction open past fastMaxOpen")
	if _, err := up.file.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	a := up.finish()
	if a.err != nil || a.code != http.StatusAccepted {
		t.Fatalf("import: %d %s %v", a.code, a.body, a.err)
	}
	var j job
	if err := jsonx.Unmarshal(a.body, &j); err != nil {
		t.Fatal(err)
	}
	if o := e.fastOutcome(j.ID); o != "fallback" {
		t.Fatalf("fast path outcome %q (%s), want fallback", o, e.fastReason(j.ID))
	}
	if j = e.wait(t, "owner", "import", j.ID); j.State != StateDone || j.Progress.Rows != n {
		t.Fatalf("job = %+v", j)
	}
	if got := joinRows(e.text(t, "SELECT count(*), sum(id) FROM "+table)); got != fmt.Sprintf("%d|%d\n", n, n*(n+1)/2) {
		t.Fatalf("rows: %s", got)
	}
}
