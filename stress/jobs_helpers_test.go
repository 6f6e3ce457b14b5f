package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// importFile starts an import job of a file part (or a file_url when url is
// set) into table and returns the raw answer.
func (c *client) importStart(t testing.TB, db, table string, file []byte, fileURL string) result {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("table_name", table)
	if fileURL != "" {
		_ = mw.WriteField("file_url", fileURL)
	} else {
		fw, _ := mw.CreateFormFile("file", table+".csv")
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	req, err := http.NewRequest("POST", c.endpoint+"/v2beta/db/"+db+"/import/", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("import into %s: %v", db, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := result{Status: resp.StatusCode, Raw: raw, Header: resp.Header}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// startJob is importStart that fails the test unless the job was accepted,
// and returns its id.
func (c *client) startImport(t testing.TB, db, table string, file []byte, fileURL string) string {
	t.Helper()
	r := c.importStart(t, db, table, file, fileURL)
	if r.Status != http.StatusAccepted || r.str("id") == "" {
		t.Fatalf("import into %s.%s: %d %s", db, table, r.Status, r.Raw)
	}
	return r.str("id")
}

// waitJob polls GET /v2beta/{kind}/{id} until the job is DONE or FAILED
// (bounded wait) and returns the last answer.
func (c *client) waitJob(t testing.TB, kind, id string, within time.Duration) result {
	t.Helper()
	var r result
	testwait.Eventually(t, within, func() error {
		var err error
		r, err = c.doE("GET", "/v2beta/"+kind+"/"+id, nil)
		if err == nil && r.Status == 200 {
			if st := r.str("state"); st == "DONE" || st == "FAILED" {
				return nil
			}
		}
		return fmt.Errorf("%s job %s not finished: %v %d %s", kind, id, err, r.Status, r.Raw)
	})
	return r
}

// csvRows is a CSV file with a header and ids 1..n.
func csvRows(n int) []byte { return csvRowsOf(n, "%d,row %d\n") }

// csvRowsOf is a CSV file with the header id,name and rows 1..n, each
// written with format from (i, i).
func csvRowsOf(n int, format string) []byte {
	var b bytes.Buffer
	b.WriteString("id,name\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, format, i, i)
	}
	return b.Bytes()
}

// exportDone starts an export of db with body, waits (up to 2 minutes) for
// it to finish DONE with a download URL, and returns its id and that URL.
func exportDone(t testing.TB, c *client, db string, body map[string]any) (id, downloadURL string) {
	t.Helper()
	exp := c.do(t, "POST", "/v2beta/db/"+db+"/export/", body)
	if exp.Status != http.StatusAccepted {
		t.Fatalf("export: %d %s", exp.Status, exp.Raw)
	}
	done := c.waitJob(t, "export", exp.str("id"), 2*time.Minute)
	dl := done.str("download_url")
	if done.str("state") != "DONE" || dl == "" {
		t.Fatalf("export did not finish with a download_url: %s", done.Raw)
	}
	return exp.str("id"), dl
}
