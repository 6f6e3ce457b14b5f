package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"
)

// e2eClient talks to a real bitd with the demo user's API key.
type e2eClient struct {
	t   *testing.T
	srv *bitdtest.Server
}

func (c *e2eClient) do(method, url, contentType string, body io.Reader) (int, []byte) {
	c.t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = c.srv.Endpoint + url
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, url, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.srv.APIKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *e2eClient) job(want int, method, url, contentType string, body io.Reader) job {
	c.t.Helper()
	code, b := c.do(method, url, contentType, body)
	if code != want {
		c.t.Fatalf("status %d, want %d: %s", code, want, b)
	}
	var j job
	if err := jsonx.Unmarshal(b, &j); err != nil {
		c.t.Fatalf("%v: %s", err, b)
	}
	return j
}

// poll follows status_url until the job ends (or until stop says so).
func (c *e2eClient) poll(statusURL string, stop func(job) bool) job {
	c.t.Helper()
	var j job
	err := testwait.Wait(c.t.Context(), 4*time.Minute, func() error {
		j = c.job(http.StatusOK, "GET", statusURL, "", nil)
		if j.State == StateDone || j.State == StateFailed || (stop != nil && stop(j)) {
			return nil
		}
		return errors.New(j.State)
	})
	if err == nil {
		return j
	}
	logs := c.srv.Logs()
	if len(logs) > 6000 {
		logs = logs[len(logs)-6000:]
	}
	c.t.Fatalf("job %s did not end; bitd log tail:\n%s", statusURL, logs)
	return job{}
}

func (c *e2eClient) importCSV(db, table string, data []byte) job {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("table_name", table)
	fw, _ := mw.CreateFormFile("file", table+".csv")
	_, _ = fw.Write(data)
	_ = mw.Close()
	return c.job(http.StatusAccepted, "POST", "/v2beta/db/"+c.srv.User+"/"+db+"/import/", mw.FormDataContentType(), &buf)
}

func (c *e2eClient) count(db, table string) string {
	c.t.Helper()
	code, b := c.do("POST", "/v2beta/query", "application/json",
		strings.NewReader(`{"database_name": "`+c.srv.User+`/`+db+`", "query_string": "SELECT count(*), count(DISTINCT id) FROM `+table+`"}`))
	if code != http.StatusOK {
		c.t.Fatalf("query: %d %s", code, b)
	}
	var out struct {
		Data [][]any `json:"data"`
	}
	if err := jsonx.Unmarshal(b, &out); err != nil {
		c.t.Fatal(err)
	}
	return jsonString(out.Data)
}

func jsonString(v any) string {
	b, _ := jsonx.Marshal(v)
	return string(b)
}

// TestE2EImportExport drives a real bitd: create a database, import a CSV,
// export it back as CSV and download it; then SIGKILL bitd in the middle of
// a large import and check that the restarted bitd finishes it with every
// row exactly once.
func TestE2EImportExport(t *testing.T) {
	s := bitdtest.Start(t)
	c := &e2eClient{t: t, srv: s}
	code, b := c.do("POST", "/v2beta/db/", "application/json", strings.NewReader(`{"name": "jobs_e2e"}`))
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("create database: %d %s", code, b)
	}

	// A plain CSV file is loaded while it uploads: the 202 answers DONE.
	j := c.importCSV("jobs_e2e", "people", []byte("id,name,born\n1,ann,1990-01-02\n2,bob,1985-12-31\n"))
	if !strings.HasPrefix(j.StatusURL, "http") || j.State != StateDone {
		t.Fatalf("import job = %+v", j)
	}
	j = c.poll(j.StatusURL, nil)
	if j.State != StateDone || j.Progress.Rows != 2 {
		t.Fatalf("import = %+v %v", j, j.ErrorDetails)
	}
	if got := c.count("jobs_e2e", "people"); got != "[[2,2]]" {
		t.Fatalf("count = %s", got)
	}

	ej := c.job(http.StatusAccepted, "POST", "/v2beta/db/"+s.User+"/jobs_e2e/export/", "application/json",
		strings.NewReader(`{"query_string": "SELECT id, name, born FROM people ORDER BY id", "file_name": "people.csv"}`))
	ej = c.poll(ej.StatusURL, nil)
	if ej.State != StateDone || ej.DownloadURL == nil {
		t.Fatalf("export = %+v", ej)
	}
	resp, err := http.Get(*ej.DownloadURL) // no Authorization: the token is the credential
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || resp.Header.Get("Content-Disposition") != `attachment; filename="people.csv"` ||
		jsonString(recs) != `[["id","name","born"],["1","ann","1990-01-02"],["2","bob","1985-12-31"]]` {
		t.Fatalf("download: %v %v %s", err, resp.Header, body)
	}

	// SIGKILL mid-import (the job path: quoted fields keep the file off the
	// upload fast path). A machine fast enough to finish the load before
	// the poll sees it running gets a larger file, up to three times.
	var (
		n     int
		table string
	)
	for attempt := 0; ; attempt++ {
		n, table = 400000<<attempt, "killed"+strconv.Itoa(attempt)
		var big bytes.Buffer
		big.WriteString("id,label,amount\n")
		for i := 1; i <= n; i++ {
			big.WriteString(strconv.Itoa(i) + ",\"row " + strconv.Itoa(i) + "\"," + strconv.Itoa(i%977) + ".5\n")
		}
		j = c.importCSV("jobs_e2e", table, big.Bytes())
		j = c.poll(j.StatusURL, func(j job) bool { return j.State == StateProcessing && j.Progress.Rows > 0 })
		if j.State == StateProcessing {
			break
		}
		if attempt == 2 {
			t.Fatalf("an import of %d rows finished (%s) before the test could kill bitd mid-load", n, j.State)
		}
	}
	s.Restart(t, syscall.SIGKILL)
	j = c.poll("/v2beta/import/"+j.ID, nil) // the restarted bitd listens on a new port
	if j.State != StateDone || j.Progress.Rows != int64(n) {
		t.Fatalf("after SIGKILL and restart: %+v %v", j, j.ErrorDetails)
	}
	if got := c.count("jobs_e2e", table); got != "[["+strconv.Itoa(n)+","+strconv.Itoa(n)+"]]" {
		t.Fatalf("rows after restart: %s, want %d exactly once", got, n)
	}

	// SIGKILL mid-upload while the fast path's COPY runs: PostgreSQL sees
	// the connection die and rolls back; no table, no job, no session.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.Endpoint+"/v2beta/db/"+s.User+"/jobs_e2e/import/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	sent := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		sent <- err
	}()
	_ = mw.WriteField("table_name", "killed_upload")
	fw, _ := mw.CreateFormFile("file", "k.csv")
	var up bytes.Buffer
	up.WriteString("id,label\n")
	for i := 1; i <= 200000; i++ {
		up.WriteString(strconv.Itoa(i) + ",row " + strconv.Itoa(i) + "\n")
	}
	if _, err := fw.Write(up.Bytes()); err != nil {
		t.Fatal(err)
	}
	// tenants no longer see each other's (or their own other) sessions in
	// pg_stat_activity: watch as the cluster's superuser
	su, err := pgx.Connect(t.Context(), bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	copying := func() string {
		var n int
		if err := su.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE 'COPY "public"."killed_upload"%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(n)
	}
	testwait.Eventually(t, time.Minute, func() error {
		if copying() == "0" {
			return errors.New("the upload's COPY never started")
		}
		return nil
	})
	s.Restart(t, syscall.SIGKILL)
	pw.CloseWithError(errors.New("bitd is gone"))
	if err := <-sent; err == nil || strings.HasPrefix(err.Error(), "answered") {
		t.Fatalf("the killed upload: %v", err)
	}
	testwait.Eventually(t, time.Minute, func() error {
		if copying() != "0" {
			return errors.New("the killed upload's COPY session is still there")
		}
		return nil
	})
	if got := c.scalar("jobs_e2e", "SELECT to_regclass('public.killed_upload') IS NULL"); got != "true" {
		t.Fatalf("the killed upload left its table (to_regclass IS NULL = %s)", got)
	}
}

// scalar runs a one-value query on database db and returns it as JSON.
func (c *e2eClient) scalar(db, sql string) string {
	c.t.Helper()
	body, _ := jsonx.Marshal(map[string]string{"database_name": c.srv.User + "/" + db, "query_string": sql})
	code, b := c.do("POST", "/v2beta/query", "application/json", bytes.NewReader(body))
	if code != http.StatusOK {
		c.t.Fatalf("query: %d %s", code, b)
	}
	var out struct {
		Data [][]any `json:"data"`
	}
	if err := jsonx.Unmarshal(b, &out); err != nil || len(out.Data) != 1 || len(out.Data[0]) != 1 {
		c.t.Fatalf("query %s: %v %s", sql, err, b)
	}
	return jsonString(out.Data[0][0])
}
