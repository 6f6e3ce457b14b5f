package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// jobServer fakes the job endpoints: import with a streamed upload, polling
// through a scripted list of states, and a download.
type jobServer struct {
	mu       sync.Mutex
	states   []string
	polls    int
	upload   []byte
	fields   map[string]string
	fileName string
	dlAuth   string
}

func (s *jobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/import/"):
		mr, err := r.MultipartReader()
		if err != nil {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":%q}`, err.Error())
			return
		}
		s.mu.Lock()
		s.fields = map[string]string{}
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			if p.FormName() == "file" {
				s.upload, s.fileName = b, p.FileName()
			} else {
				s.fields[p.FormName()] = string(b)
			}
		}
		s.mu.Unlock()
		w.WriteHeader(202)
		io.WriteString(w, `{"id":"job-1","state":"RECEIVED","date_created":"2026-01-01T00:00:00Z"}`)
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/export/"):
		w.WriteHeader(202)
		io.WriteString(w, `{"id":"job-2","state":"RECEIVED","date_created":"2026-01-01T00:00:00Z"}`)
	case r.Method == "GET" && (strings.HasPrefix(r.URL.Path, "/v2beta/import/") || strings.HasPrefix(r.URL.Path, "/v2beta/export/")):
		s.mu.Lock()
		st := s.states[min(s.polls, len(s.states)-1)]
		s.polls++
		n := s.polls
		s.mu.Unlock()
		extra := ""
		if st == JobFailed {
			extra = `,"error_type":"bad_csv","error_id":"e-9","error_details":{"line":3}`
		}
		if st == JobDone && strings.HasPrefix(r.URL.Path, "/v2beta/export/") {
			extra = `,"download_url":"/v2beta/files/out.csv?sig=abc","export_format":"csv","file_name":"out.csv"`
		}
		fmt.Fprintf(w, `{"id":"job","state":%q,"date_created":"2026-01-01T00:00:00Z","progress":{"bytes_total":100,"bytes_done":%d,"rows":%d}%s}`, st, n*10, n, extra)
	case r.URL.Path == "/v2beta/files/out.csv":
		s.mu.Lock()
		s.dlAuth = r.Header.Get("Authorization")
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/csv")
		io.WriteString(w, "a,b\n1,2\n")
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"error":"no route","code":"not_found"}`)
	}
}

// chunkReader yields its data in small pieces, like a file being read.
type chunkReader struct {
	data []byte
	read int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.read >= len(c.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 4096)], c.data[c.read:])
	c.read += n
	return n, nil
}

func TestImportStreamsAndWaits(t *testing.T) {
	t.Parallel()
	js := &jobServer{states: []string{JobReceived, JobProcessing, JobProcessing, JobProcessing, JobProcessing, JobDone}}
	srv := newHTTPServer(t, js)
	clk := newFakeClock()
	c := newTestClient(t, srv, clk, WithPollPolicy(PollPolicy{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond}))
	data := bytes.Repeat([]byte("1,hello\n"), 200_000) // 1.6 MB
	var seen []string
	var sent, total int64
	job, err := c.Import(t.Context(), "alice/shop", ImportRequest{Table: "items", Schema: "public", InferHeader: "no_header",
		File: &chunkReader{data: data}, FileName: "dir/items.csv", Size: int64(len(data)),
		OnUpload: func(s, t int64) { sent, total = s, t }}, func(j *Job) { seen = append(seen, j.State) })
	if err != nil {
		t.Fatal(err)
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	if !bytes.Equal(js.upload, data) || js.fileName != "items.csv" || js.fields["table_name"] != "items" || js.fields["schema_name"] != "public" || js.fields["infer_header"] != "no_header" {
		t.Fatalf("upload %d bytes name %q fields %v", len(js.upload), js.fileName, js.fields)
	}
	if sent != int64(len(data)) || total != int64(len(data)) {
		t.Fatalf("OnUpload last saw %d of %d, want %d", sent, total, len(data))
	}
	if job.State != JobDone || job.Progress == nil || job.Progress.Rows != 6 {
		t.Fatalf("job = %+v", job)
	}
	if strings.Join(seen, ",") != "RECEIVED,RECEIVED,PROCESSING,PROCESSING,PROCESSING,PROCESSING,DONE" {
		t.Fatalf("progress saw %v", seen)
	}
	want := []time.Duration{100, 200, 300, 300, 300}
	got := clk.Sleeps()
	if len(got) != len(want) {
		t.Fatalf("poll sleeps = %v", got)
	}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("poll sleeps = %v, want %v ms", got, want)
		}
	}
}

func TestImportUnknownSize(t *testing.T) {
	t.Parallel()
	js := &jobServer{states: []string{JobDone}}
	srv := newHTTPServer(t, js)
	c := newTestClient(t, srv, newFakeClock())
	data := bytes.Repeat([]byte("x,y\n"), 50_000)
	if _, err := c.CreateImportJob(t.Context(), "alice/shop", ImportRequest{Table: "t", File: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	if !bytes.Equal(js.upload, data) || js.fileName != "upload.csv" {
		t.Fatalf("upload %d bytes, name %q", len(js.upload), js.fileName)
	}
}

func TestImportFromURLAndValidation(t *testing.T) {
	t.Parallel()
	js := &jobServer{states: []string{JobDone}}
	srv := newHTTPServer(t, js)
	c := newTestClient(t, srv, newFakeClock())
	if _, err := c.CreateImportJob(t.Context(), "alice/shop", ImportRequest{Table: "t", FileURL: "https://example.com/x.csv"}); err != nil {
		t.Fatal(err)
	}
	js.mu.Lock()
	if js.fields["file_url"] != "https://example.com/x.csv" || js.upload != nil {
		t.Fatalf("fields %v", js.fields)
	}
	js.mu.Unlock()
	for _, r := range []ImportRequest{{Table: "t"}, {Table: "t", FileURL: "u", File: strings.NewReader("")}, {FileURL: "u"}} {
		if _, err := c.CreateImportJob(t.Context(), "alice/shop", r); err == nil {
			t.Fatalf("%+v: no error", r)
		}
	}
	if _, err := c.CreateImportJob(t.Context(), "noslash", ImportRequest{Table: "t", FileURL: "u"}); err == nil || !strings.Contains(err.Error(), "account/dbname") {
		t.Fatalf("bad database name: %v", err)
	}
}

func TestWaitFailedJob(t *testing.T) {
	t.Parallel()
	js := &jobServer{states: []string{JobProcessing, JobFailed}}
	srv := newHTTPServer(t, js)
	c := newTestClient(t, srv, newFakeClock())
	job, err := c.WaitImport(t.Context(), "job-1", nil)
	var jf *JobFailedError
	if !errors.As(err, &jf) || jf.Job != job || job.ErrorType != "bad_csv" {
		t.Fatalf("err = %v job %+v", err, job)
	}
	if msg := err.Error(); !strings.Contains(msg, "bad_csv") || !strings.Contains(msg, `"line":3`) || !strings.Contains(msg, "e-9") {
		t.Fatalf("message %q lacks error type, details or ID", msg)
	}
}

func TestExportAndDownload(t *testing.T) {
	t.Parallel()
	js := &jobServer{states: []string{JobProcessing, JobDone}}
	srv := newHTTPServer(t, js)
	c := newTestClient(t, srv, newFakeClock())
	job, err := c.Export(t.Context(), "alice/shop", ExportRequest{Query: "select 1", Format: "csv"}, nil)
	if err != nil || job.DownloadURL == "" {
		t.Fatalf("%+v %v", job, err)
	}
	var buf bytes.Buffer
	n, err := c.Download(t.Context(), job, &buf)
	if err != nil || n != 8 || buf.String() != "a,b\n1,2\n" {
		t.Fatalf("download %d %q %v", n, buf.String(), err)
	}
	js.mu.Lock()
	auth := js.dlAuth
	js.mu.Unlock()
	if auth != "Bearer v2_testkey" {
		t.Fatalf("same-host download auth = %q", auth)
	}
	// A download URL on another host gets no credentials.
	other := &jobServer{}
	otherURL := newHTTPServer(t, other)
	buf.Reset()
	job.DownloadURL = otherURL + "/v2beta/files/out.csv?sig=x"
	if _, err := c.Download(t.Context(), job, &buf); err != nil || buf.String() != "a,b\n1,2\n" {
		t.Fatalf("%q %v", buf.String(), err)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if other.dlAuth != "" {
		t.Fatalf("credentials sent to another host: %q", other.dlAuth)
	}
}

func TestDownloadExpiredExport(t *testing.T) {
	t.Parallel()
	var job Job
	body := `{"id":"j1","state":"DONE","download_url":null,"file_expired":{"date":"2026-11-20T10:00:00Z","message":"the export file expired on 2026-11-20 10:00:00 UTC and was deleted from the file store: run the export again for a new file"}}`
	if err := jsonx.Unmarshal([]byte(body), &job); err != nil {
		t.Fatal(err)
	}
	if job.FileExpired == nil || !job.FileExpired.Date.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("FileExpired = %+v", job.FileExpired)
	}
	c, err := NewClient("http://127.0.0.1:1", WithAPIKey("v2_testkey"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := c.Download(t.Context(), &job, &buf); err == nil || !strings.Contains(err.Error(), "run the export again") {
		t.Fatalf("Download of an expired export: %v", err)
	}
}
