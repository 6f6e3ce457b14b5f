package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// Job states.
const (
	JobReceived   = "RECEIVED"
	JobProcessing = "PROCESSING"
	JobDone       = "DONE"
	JobFailed     = "FAILED"
)

// Job is an import or export job.
type Job struct {
	// ID is the job's UUID.
	ID string `json:"id"`
	// DateCreated is when the job was received; DateFinished is nil until it ends.
	DateCreated  time.Time  `json:"date_created"`
	DateFinished *time.Time `json:"date_finished"`
	// State is RECEIVED, PROCESSING, DONE or FAILED.
	State string `json:"state"`
	// Retries counts the server's attempts after the first.
	Retries int `json:"retries"`
	// ErrorType, ErrorID and ErrorDetails describe a FAILED job.
	ErrorType    string         `json:"error_type"`
	ErrorID      string         `json:"error_id"`
	ErrorDetails map[string]any `json:"error_details"`
	// StatusURL is the absolute URL to poll.
	StatusURL string `json:"status_url"`
	// Progress reports bytes and rows processed (nil when the server sends none).
	Progress *JobProgress `json:"progress,omitempty"`
	// ExportFormat, FileName and DownloadURL are set for export jobs;
	// DownloadURL once the job is DONE (it is signed and expires).
	ExportFormat string `json:"export_format,omitempty"`
	FileName     string `json:"file_name,omitempty"`
	DownloadURL  string `json:"download_url,omitempty"`
	// FileExpired is set once the server deleted an export's file (bitd
	// keeps it for --export-retention, 7 days by default): DownloadURL is
	// then empty; run the export again.
	FileExpired *JobFileExpired `json:"file_expired,omitempty"`
}

// JobFileExpired says when an export's file was deleted, and what to do.
type JobFileExpired struct {
	Date    time.Time `json:"date"`
	Message string    `json:"message"`
}

// JobProgress reports how far a job got, for progress bars.
type JobProgress struct {
	// BytesTotal is the input size (0 when unknown); BytesDone how much is processed; Rows the rows written.
	BytesTotal int64 `json:"bytes_total"`
	BytesDone  int64 `json:"bytes_done"`
	Rows       int64 `json:"rows"`
}

// Finished reports whether the job is DONE or FAILED.
func (j *Job) Finished() bool { return j.State == JobDone || j.State == JobFailed }

// ImportRequest describes an import into a table. Give exactly one of File
// and FileURL.
type ImportRequest struct {
	// Table is the target table (created when missing); Schema defaults to "public".
	Table  string
	Schema string
	// InferHeader is "auto" (default), "first_row" or "no_header".
	InferHeader string
	// IfExists is what happens to an existing table: "append" (default,
	// also "") adds the file's rows; "replace" empties the table and loads
	// the file in one transaction, keeping its columns, indexes,
	// constraints and grants (a file that does not fit it fails the job
	// and leaves the old rows).
	IfExists string
	// File is streamed as the upload without being buffered; the caller
	// closes it if needed. An upload from File is never retried.
	File io.Reader
	// FileName names the uploaded part (its extension tells the server the
	// format: .csv, .json, .xlsx, .parquet, ...). Default "upload.csv".
	FileName string
	// FileURL is a URL the server fetches instead of an upload.
	FileURL string
	// Size is the length of File in bytes when known (0: unknown). With it
	// the upload is sent with an exact Content-Length and OnUpload learns
	// the total.
	Size int64
	// OnUpload, when non-nil, is called as the file is sent with the bytes
	// of File sent so far and Size (0 when unknown). It runs on the
	// uploading goroutine; keep it quick.
	OnUpload func(sent, total int64)
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r     io.Reader
	n     int64
	total int64
	fn    func(sent, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if c.fn != nil {
			c.fn(c.n, c.total)
		}
	}
	return n, err
}

// multipartUpload returns a streamed multipart body holding fields and the
// file of r, its Content-Type, and its exact length when r.Size is known
// (else -1). The file is never buffered: an io.Pipe carries it from a
// goroutine writing the multipart.Writer; closing the body stops it.
func multipartUpload(fields [][2]string, r ImportRequest) (io.ReadCloser, string, int64) {
	name := r.FileName
	if name == "" {
		name = "upload.csv"
	}
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	file := io.Reader(&countingReader{r: r.File, total: r.Size, fn: r.OnUpload})
	f := newForm()
	for _, kv := range fields {
		f.field(kv[0], kv[1])
	}
	f.file("file", name)
	head, tail := f.b.String(), f.end()
	length := int64(-1)
	if r.Size > 0 {
		length = int64(len(head)) + r.Size + int64(len(tail))
		file = io.LimitReader(file, r.Size)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := io.WriteString(pw, head)
		if err == nil {
			_, err = io.Copy(pw, file)
		}
		if err == nil {
			_, err = io.WriteString(pw, tail)
		}
		pw.CloseWithError(err)
	}()
	return pr, f.contentType(), length
}

// form lays out a multipart/form-data body (RFC 7578) as mime/multipart
// does, without its dependency on the net package (kept out of js/wasm).
type form struct {
	boundary string
	b        strings.Builder
}

func newForm() *form { return &form{boundary: newIdempotencyKey() + newIdempotencyKey()[:14]} }

// escapeQuotes escapes a multipart header's quoted value as
// mime/multipart does: backslash and quote with a backslash, CR and LF as
// %0D and %0A. (A loop, not a strings.Replacer: the Replacer machinery
// weighs ~20 KB in a wasm module.)
func escapeQuotes(s string) string {
	if !strings.ContainsAny(s, "\\\"\r\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\r':
			b.WriteString("%0D")
		case '\n':
			b.WriteString("%0A")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// part starts a part: the delimiter (with the line break ending the
// previous part's content) and the Content-Disposition.
func (f *form) part(disposition string) {
	if f.b.Len() > 0 {
		f.b.WriteString("\r\n")
	}
	fmt.Fprintf(&f.b, "--%s\r\nContent-Disposition: form-data; %s\r\n", f.boundary, disposition)
}

func (f *form) field(name, value string) {
	f.part(`name="` + escapeQuotes(name) + `"`)
	f.b.WriteString("\r\n" + value)
}

// file starts a file part; its bytes follow, then end().
func (f *form) file(name, fileName string) {
	f.part(`name="` + escapeQuotes(name) + `"; filename="` + escapeQuotes(fileName) + `"`)
	f.b.WriteString("Content-Type: application/octet-stream\r\n\r\n")
}

// end is the closing delimiter, after the last part.
func (f *form) end() string { return "\r\n--" + f.boundary + "--\r\n" }

func (f *form) contentType() string { return "multipart/form-data; boundary=" + f.boundary }

// ExportRequest describes an export: Query, or Table (with Schema).
type ExportRequest struct {
	// Format is "csv" (default), "json", "xls" or "parquet".
	Format string `json:"export_format,omitempty"`
	// FileName is the name of the produced file.
	FileName string `json:"file_name,omitempty"`
	// Query is the SQL whose result is exported.
	Query string `json:"query_string,omitempty"`
	// Table and Schema name a table to export instead.
	Table  string `json:"table_name,omitempty"`
	Schema string `json:"schema_name,omitempty"`
}

// CreateImportJob starts importing r into database ("account/dbname"). A
// File is streamed as a multipart upload without being read into memory;
// with FileURL the request is small and carries an Idempotency-Key, so it is
// retried like a GET.
func (c *Client) CreateImportJob(ctx context.Context, database string, r ImportRequest) (*Job, error) {
	p, err := escapeDB(database)
	if err != nil {
		return nil, err
	}
	if r.Table == "" {
		return nil, errors.New("core: import: no table name given")
	}
	if (r.File == nil) == (r.FileURL == "") {
		return nil, errors.New("core: import: give exactly one of File and FileURL")
	}
	fields := [][2]string{{"table_name", r.Table}}
	if r.Schema != "" {
		fields = append(fields, [2]string{"schema_name", r.Schema})
	}
	if r.InferHeader != "" {
		fields = append(fields, [2]string{"infer_header", r.InferHeader})
	}
	if r.IfExists != "" {
		fields = append(fields, [2]string{"if_exists", r.IfExists})
	}
	req := &request{method: "POST", path: apiPrefix + "/db/" + p + "/import/", header: Header{}}
	if r.FileURL != "" {
		// Small form: buffered, replayable, retried with an Idempotency-Key.
		f := newForm()
		for _, kv := range append(fields, [2]string{"file_url", r.FileURL}) {
			f.field(kv[0], kv[1])
		}
		req.raw = []byte(f.b.String() + f.end())
		req.idem = true
		req.header.Set("Content-Type", f.contentType())
	} else {
		body, ctype, length := multipartUpload(fields, r)
		defer body.Close() // stops the writer goroutine if the request ends early
		req.rawBody = body
		req.length = length
		req.header.Set("Content-Type", ctype)
	}
	var job Job
	if _, err := c.do(ctx, req, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// GetImportJob returns the import job id.
func (c *Client) GetImportJob(ctx context.Context, id string) (*Job, error) {
	return c.getJob(ctx, "/import/", id)
}

// GetExportJob returns the export job id.
func (c *Client) GetExportJob(ctx context.Context, id string) (*Job, error) {
	return c.getJob(ctx, "/export/", id)
}

func (c *Client) getJob(ctx context.Context, kind, id string) (*Job, error) {
	if id == "" {
		return nil, errors.New("core: no job ID given")
	}
	var job Job
	if _, err := c.do(ctx, &request{method: "GET", path: apiPrefix + kind + url.PathEscape(id)}, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// CreateExportJob starts exporting from database ("account/dbname"). The
// request carries an Idempotency-Key, so it is retried like a GET.
func (c *Client) CreateExportJob(ctx context.Context, database string, r ExportRequest) (*Job, error) {
	p, err := escapeDB(database)
	if err != nil {
		return nil, err
	}
	if (r.Query == "") == (r.Table == "") {
		return nil, errors.New("core: export: give exactly one of Query and Table")
	}
	var job Job
	if _, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/db/" + p + "/export/", body: r, idem: true}, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// PollPolicy sets how WaitImport and WaitExport poll: the wait starts at
// Initial and doubles up to Max.
type PollPolicy struct {
	// Initial is the first wait (default 100ms).
	Initial time.Duration
	// Max caps the wait (default 2s).
	Max time.Duration
}

// WithPollPolicy sets the job polling intervals (defaults 100ms doubling to 2s).
func WithPollPolicy(p PollPolicy) Option {
	return func(c *Client) error {
		if p.Initial < 0 || p.Max < 0 {
			return errors.New("core: WithPollPolicy: negative interval")
		}
		c.poll = p
		return nil
	}
}

func (p PollPolicy) withDefaults() PollPolicy {
	if p.Initial == 0 {
		p.Initial = 100 * time.Millisecond
	}
	if p.Max == 0 {
		p.Max = 2 * time.Second
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	return p
}

// WaitImport polls the import job id until it is DONE or FAILED, calling
// progress (when non-nil) with every state it sees. A FAILED job returns the
// job and a *JobFailedError.
func (c *Client) WaitImport(ctx context.Context, id string, progress func(*Job)) (*Job, error) {
	return c.wait(ctx, "/import/", id, progress)
}

// WaitExport polls the export job id like WaitImport.
func (c *Client) WaitExport(ctx context.Context, id string, progress func(*Job)) (*Job, error) {
	return c.wait(ctx, "/export/", id, progress)
}

func (c *Client) wait(ctx context.Context, kind, id string, progress func(*Job)) (*Job, error) {
	p := c.poll.withDefaults()
	d := p.Initial
	for {
		job, err := c.getJob(ctx, kind, id)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(job)
		}
		switch job.State {
		case JobDone:
			return job, nil
		case JobFailed:
			return job, &JobFailedError{Job: job}
		}
		if err := c.clock.Sleep(ctx, d); err != nil {
			return job, fmt.Errorf("core: waiting for job %s: %w", id, err)
		}
		if d *= 2; d > p.Max {
			d = p.Max
		}
	}
}

// Import creates an import job and waits for it (see CreateImportJob and WaitImport).
func (c *Client) Import(ctx context.Context, database string, r ImportRequest, progress func(*Job)) (*Job, error) {
	job, err := c.CreateImportJob(ctx, database, r)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		progress(job)
	}
	if job.Finished() {
		if job.State == JobFailed {
			return job, &JobFailedError{Job: job}
		}
		return job, nil
	}
	return c.WaitImport(ctx, job.ID, progress)
}

// Export creates an export job and waits for it; the result's DownloadURL
// can then be passed to Download.
func (c *Client) Export(ctx context.Context, database string, r ExportRequest, progress func(*Job)) (*Job, error) {
	job, err := c.CreateExportJob(ctx, database, r)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		progress(job)
	}
	if job.State == JobFailed {
		return job, &JobFailedError{Job: job}
	}
	if job.State == JobDone && job.DownloadURL != "" {
		return job, nil
	}
	return c.WaitExport(ctx, job.ID, progress)
}

// Download streams the file of a finished export job (its DownloadURL,
// absolute or relative to the endpoint) into w and returns the bytes
// written. Credentials are sent only when the URL is on the client's endpoint.
func (c *Client) Download(ctx context.Context, job *Job, w io.Writer) (int64, error) {
	if job != nil && job.FileExpired != nil {
		return 0, errors.New("core: Download: " + job.FileExpired.Message)
	}
	if job == nil || job.DownloadURL == "" {
		return 0, errors.New("core: Download: the job has no download_url yet; wait for it with WaitExport")
	}
	ref, err := url.Parse(job.DownloadURL)
	if err != nil {
		return 0, errors.New("core: Download: the job's download_url is not a URL")
	}
	u := c.endpoint.ResolveReference(ref)
	if !ref.IsAbs() && !strings.HasPrefix(ref.Path, "/") {
		u = c.url("/"+ref.Path, nil)
		u.RawQuery = ref.RawQuery
	}
	req := &Request{Method: "GET", URL: u.String(), Header: Header{}, ContentLength: -1}
	resp, err := c.send(ctx, c.full, req)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, c.readError(req, resp)
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return n, fmt.Errorf("core: Download of job %s after %d bytes: %w", job.ID, n, err)
	}
	return n, nil
}
