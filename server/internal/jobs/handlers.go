package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/export"
	"github.com/bitkit-dev/bitkit/server/internal/ingest"
	"github.com/google/uuid"
	gblob "gocloud.dev/blob"
)

// jobJSON is the Job object of the wire contract.
type jobJSON struct {
	ID           string           `json:"id"`
	DateCreated  string           `json:"date_created"`
	DateFinished *string          `json:"date_finished"`
	State        string           `json:"state"`
	Retries      int              `json:"retries"`
	ErrorType    *string          `json:"error_type"`
	ErrorID      *string          `json:"error_id"`
	ErrorDetails jsonx.RawMessage `json:"error_details"`
	StatusURL    string           `json:"status_url"`
	Progress     progressJSON     `json:"progress"`
}

type progressJSON struct {
	BytesTotal int64 `json:"bytes_total"`
	BytesDone  int64 `json:"bytes_done"`
	Rows       int64 `json:"rows"`
}

// exportJobJSON adds the export fields.
type exportJobJSON struct {
	jobJSON
	ExportFormat string  `json:"export_format"`
	FileName     string  `json:"file_name"`
	DownloadURL  *string `json:"download_url"`
	// FileExpired is set once the retention sweep deleted the file.
	FileExpired *fileExpiredJSON `json:"file_expired"`
}

// fileExpiredJSON says when an export's file was deleted, and what to do.
type fileExpiredJSON struct {
	Date    string `json:"date"`
	Message string `json:"message"`
}

func ownerID(p *authn.Principal) string {
	if p.Kind == authn.KindServiceAccount {
		return "sa:" + p.ServiceAccountID
	}
	return "user:" + p.UserID
}

// optional is nil for "", else &s.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Service) view(r *record) any {
	j := jobJSON{
		ID: r.ID, DateCreated: r.DateCreated.UTC().Format(time.RFC3339Nano), State: r.State, Retries: r.Retries,
		ErrorType: r.ErrorType, ErrorID: r.ErrorID, ErrorDetails: jsonx.RawMessage("null"),
		StatusURL: s.cfg.PublicURL + "/v2beta/" + r.Kind + "/" + r.ID,
		Progress:  progressJSON{BytesTotal: r.BytesTotal, BytesDone: r.BytesDone, Rows: r.Rows},
	}
	if len(r.ErrorDetails) > 0 {
		j.ErrorDetails = r.ErrorDetails
	}
	if r.DateFinished != nil {
		f := r.DateFinished.UTC().Format(time.RFC3339Nano)
		j.DateFinished = &f
	}
	if r.Kind != "export" {
		return j
	}
	e := exportJobJSON{jobJSON: j}
	if r.ExportFormat != nil {
		e.ExportFormat = *r.ExportFormat
	}
	if r.FileName != nil {
		e.FileName = *r.FileName
	}
	if r.FileDeletedAt != nil {
		d := r.FileDeletedAt.UTC().Format(time.RFC3339Nano)
		e.FileExpired = &fileExpiredJSON{Date: d, Message: expiredMessage(r)}
		return e
	}
	if r.State == StateDone {
		if tok, err := signToken(s.key, r.ID, s.now().Add(s.cfg.DownloadURLTTL)); err == nil {
			u := s.cfg.PublicURL + "/v2beta/files/" + tok
			e.DownloadURL = &u
		}
	}
	return e
}

func (s *Service) principal(r *http.Request) (*authn.Principal, error) {
	p := authn.From(r.Context())
	if p == nil {
		return nil, apierr.Unauthorized("this route needs an API key or access token: send Authorization: Bearer <key>")
	}
	return p, nil
}

// handleCreateImport streams the multipart upload into the blob store, then
// records the job.
func (s *Service) handleCreateImport(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	target, err := s.resolver.Resolve(r.Context(), r.PathValue("account")+"/"+r.PathValue("db"))
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	// A file_url import may also come as a URL-encoded form (python-bitdotio's
	// create_import_job(file_url=…)): its fields are read here and there are
	// no parts.
	fields, mr, err := importForm(w, r)
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	id := uuid.NewString()
	rec := &record{ID: id, Kind: "import", OwnerID: ownerID(p), CredentialID: optional(p.CredentialID), AccountID: optional(p.AccountID),
		DatabaseID: target.DatabaseID, DatabaseName: target.FullName,
		PGDatabase: target.PGDatabase, PGRole: target.PGRole}
	var size int64
	uploaded := false
	cleanup := func() {
		if uploaded {
			_ = s.bucket.Delete(context.WithoutCancel(r.Context()), uploadKey(id))
		}
	}
	var fast *fastLoad
	for mr != nil {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			cleanup()
			apierr.Write(w, r, apierr.BadRequest("invalid_request", "the multipart body cannot be read: %v", err))
			return
		}
		name := part.FormName()
		if name == "file" {
			if uploaded {
				cleanup()
				apierr.Write(w, r, apierr.BadRequest("invalid_request", "send exactly one file part"))
				return
			}
			rec.Params.UploadName = part.FileName()
			// The form fields sent before the file decide whether it can be
			// loaded while it streams in (the fast path, fastpath.go).
			early := importParams(fields)
			early.UploadName = rec.Params.UploadName
			if fast = s.newFastLoad(r.Context(), rec, early); fast != nil {
				defer fast.close()
			}
			size, rec.Params.CSVProfile, err = s.storeUpload(r.Context(), id, part, fast)
			uploaded = true
			if err != nil {
				cleanup()
				apierr.Write(w, r, err)
				return
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 64<<10+1))
		if err != nil || len(v) > 64<<10 {
			cleanup()
			apierr.Write(w, r, apierr.BadRequest("invalid_request", "form field %q is unreadable or longer than 64 KiB", name))
			return
		}
		fields[name] = string(v)
	}
	upload, prof := rec.Params.UploadName, rec.Params.CSVProfile
	rec.Params = importParams(fields)
	rec.Params.UploadName, rec.Params.CSVProfile = upload, prof
	if err := validateImport(&rec.Params, uploaded); err != nil {
		cleanup()
		apierr.Write(w, r, err)
		return
	}
	if uploaded {
		k := uploadKey(id)
		rec.BlobKey = &k
		rec.BytesTotal = size
	}
	if fast != nil {
		recorded, err := s.finishFast(r.Context(), fast, rec, size)
		if err != nil {
			cleanup()
			apierr.Write(w, r, err)
			return
		}
		if recorded {
			apierr.WriteJSON(w, http.StatusAccepted, s.view(rec))
			return
		}
		rec.State, rec.LoadXID, rec.Rows, rec.BytesDone = "", nil, 0, 0
	}
	if err := s.insertJob(r.Context(), rec); err != nil {
		cleanup()
		apierr.Write(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusAccepted, s.view(rec))
}

// maxFormBytes bounds a URL-encoded import request (it carries no file).
const maxFormBytes = 1 << 20

// importForm reads an import request's body: an
// application/x-www-form-urlencoded body is read whole into fields (mr is
// nil); multipart/form-data gives a reader of its parts (fields is empty,
// the caller reads them). Anything else is a 400 naming both shapes.
func importForm(w http.ResponseWriter, r *http.Request) (fields map[string]string, mr *multipart.Reader, err error) {
	fields = map[string]string{}
	if d, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); d == "application/x-www-form-urlencoded" {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
		if err != nil {
			var ae *apierr.Error
			if errors.As(err, &ae) {
				return nil, nil, ae
			}
			return nil, nil, apierr.BadRequest("invalid_request",
				"the form body cannot be read or is larger than %d KiB: a URL-encoded import carries only fields (table_name, file_url, …); upload files as multipart/form-data", maxFormBytes>>10)
		}
		vals, err := url.ParseQuery(string(b))
		if err != nil {
			return nil, nil, apierr.BadRequest("invalid_request", "the URL-encoded form body is malformed: %v", err)
		}
		for k, v := range vals {
			if len(v) > 1 {
				e := apierr.BadRequest("invalid_request", "form field %q is given %d times: send it once", k, len(v))
				e.Field = k
				return nil, nil, e
			}
			fields[k] = v[0]
		}
		if _, ok := fields["file"]; ok {
			return nil, nil, &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "file",
				Message: "a URL-encoded form cannot carry a file: upload it as a multipart/form-data file part, or give file_url"}
		}
		return fields, nil, nil
	}
	mr, err = multipartReader(r)
	if err != nil {
		return nil, nil, apierr.BadRequest("invalid_request",
			"an import is a multipart/form-data request with table_name and a file part or file_url, or an application/x-www-form-urlencoded one with table_name and file_url: %v", err)
	}
	return fields, mr, nil
}

// multipartReader is r.MultipartReader over a large read buffer: a
// multipart.Reader reads its body a few KiB at a time, which costs a
// system call each straight on the connection.
func multipartReader(r *http.Request) (*multipart.Reader, error) {
	d, ps, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (d != "multipart/form-data" && d != "multipart/mixed") {
		return nil, http.ErrNotMultipart
	}
	boundary := ps["boundary"]
	if boundary == "" {
		return nil, http.ErrMissingBoundary
	}
	return multipart.NewReader(bufio.NewReaderSize(r.Body, 256<<10), boundary), nil
}

// The values of an import's if_exists field.
const (
	ifExistsAppend  = "append"  // add the file's rows to an existing table (the default)
	ifExistsReplace = "replace" // TRUNCATE an existing table and load the file, in one transaction
)

// importParams reads an import's form fields.
func importParams(fields map[string]string) params {
	p := params{
		Table:       strings.TrimSpace(fields["table_name"]),
		Schema:      strings.TrimSpace(fields["schema_name"]),
		Header:      strings.TrimSpace(fields["infer_header"]),
		FileURL:     strings.TrimSpace(fields["file_url"]),
		Format:      strings.TrimSpace(fields["format"]),
		Sheet:       fields["sheet"],
		SQLiteTable: fields["sqlite_table"],
		IfExists:    strings.TrimSpace(fields["if_exists"]),
	}
	if p.IfExists == ifExistsAppend {
		p.IfExists = ""
	}
	if p.Schema == "" {
		p.Schema = "public"
	}
	if p.Header == "" {
		p.Header = ingest.HeaderAuto
	}
	return p
}

func validateImport(p *params, uploaded bool) error {
	switch {
	case p.Table == "":
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "table_name", Message: "table_name is required"}
	case len(p.Table) > 63 || len(p.Schema) > 63:
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "table_name", Message: "table_name and schema_name are at most 63 bytes long"}
	case uploaded == (p.FileURL != ""):
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "file", Message: "send exactly one of a file part or file_url"}
	}
	switch p.Header {
	case ingest.HeaderAuto, ingest.HeaderFirstRow, ingest.HeaderNone:
	default:
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "infer_header", Message: fmt.Sprintf("infer_header must be auto, first_row or no_header, not %q", p.Header)}
	}
	switch p.IfExists {
	case "", ifExistsReplace:
	default:
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "if_exists", Message: fmt.Sprintf("if_exists must be append or replace, not %q", p.IfExists)}
	}
	if p.Format != "" {
		if _, err := ingest.DetectFormat(p.Format, "", nil); err != nil {
			return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "format", Message: err.Error()}
		}
	}
	if p.FileURL != "" {
		u, err := url.Parse(p.FileURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "file_url", Message: "file_url must be an absolute http or https URL"}
		}
	}
	return nil
}

func uploadKey(id string) string { return "uploads/" + id }

// storeUpload copies a file part into the blob store, never holding it in
// memory, and enforces MaxUploadBytes. While the bytes stream through, a
// second goroutine runs the CSV inference pass over them (ingest.ProfileCSV),
// so that the job does not read a CSV file twice; the profile is nil when
// the file is not CSV or the pass could not decide (the job then infers the
// types itself). With a fast-path attempt (fast, may be nil) the bytes also
// go to its COPY, and the inference pass serves its speculation.
func (s *Service) storeUpload(ctx context.Context, id string, part *multipart.Part, fast *fastLoad) (int64, *ingest.CSVProfile, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bw, err := s.bucket.NewWriter(wctx, uploadKey(id), &gblob.WriterOptions{ContentType: "application/octet-stream", BufferSize: 1 << 20})
	if err != nil {
		s.log.ErrorContext(ctx, "upload: blob writer", "job", id, "err", err)
		if fast != nil {
			fast.spec.CloseWrite(err)
		}
		return 0, nil, blobError()
	}
	tee := newChunkTee()
	var spec *ingest.Speculation
	var out io.Writer = io.MultiWriter(bw, tee)
	if fast != nil {
		spec = fast.spec
		out = io.MultiWriter(bw, tee, fast.spec)
	}
	var prof *ingest.CSVProfile
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		p, perr := ingest.ProfileCSVSpeculating(wctx, part.FileName(), tee, spec)
		if perr == nil {
			prof = p
		}
		tee.discard()
	}()
	limit := s.cfg.MaxUploadBytes
	n, err := copyChunks(out, io.LimitReader(part, limit+1), make([]byte, 64<<10))
	if err == nil && n > limit {
		err = &apierr.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: fmt.Sprintf("the file is larger than the server's upload limit of %d bytes: split it, or serve it over https and pass file_url", limit)}
	}
	tee.close(err)
	if fast != nil {
		fast.spec.CloseWrite(err)
	}
	<-profiled
	if err != nil {
		cancel() // abort the blob write
		_ = bw.Close()
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return n, nil, err
		}
		if ctx.Err() != nil {
			return n, nil, ctx.Err()
		}
		if storageFull(err) {
			s.log.ErrorContext(ctx, "upload: blob store full", "job", id, "err", err)
			return n, nil, storageFullError()
		}
		return n, nil, apierr.BadRequest("invalid_request", "the upload was cut off: %v", err)
	}
	if err := bw.Close(); err != nil {
		s.log.ErrorContext(ctx, "upload: blob close", "job", id, "err", err)
		if fast != nil {
			fast.spec.Drop(err)
		}
		if storageFull(err) {
			return n, nil, storageFullError()
		}
		return n, nil, blobError()
	}
	if prof != nil && prof.Size != n {
		prof = nil
	}
	return n, prof, nil
}

// copyChunks copies r to w in chunks of len(buf) bytes (the last one
// shorter): a multipart part reads a few KiB at a time, and the writers
// behind w (the blob store, the inference pass, the COPY) work best with
// large writes. It returns the bytes copied and the first error other than
// io.EOF.
func copyChunks(w io.Writer, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var k int
			k, rerr = r.Read(buf[n:])
			n += k
		}
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// chunkTee hands copies of the bytes written to it to a reader goroutine
// through a small queue, so that the writer (the upload) does not wait for
// the reader (the inference pass) on every write. Once the reader calls
// discard, writes are dropped.
type chunkTee struct {
	ch      chan []byte
	free    chan []byte
	dropped chan struct{}
	cur     []byte
	off     int
	err     error
}

func newChunkTee() *chunkTee {
	return &chunkTee{ch: make(chan []byte, 16), free: make(chan []byte, 18), dropped: make(chan struct{})}
}

func (t *chunkTee) Write(p []byte) (int, error) {
	var b []byte
	select {
	case b = <-t.free:
		b = append(b[:0], p...)
	default:
		b = append([]byte(nil), p...)
	}
	select {
	case t.ch <- b:
	case <-t.dropped:
	}
	return len(p), nil
}

// close ends the stream; err (nil for a complete file) is what the reader
// gets instead of io.EOF. The writer side calls it once.
func (t *chunkTee) close(err error) {
	if err == nil {
		err = io.EOF
	}
	t.err = err
	close(t.ch)
}

func (t *chunkTee) Read(p []byte) (int, error) {
	for t.off >= len(t.cur) {
		if t.cur != nil {
			select {
			case t.free <- t.cur:
			default:
			}
			t.cur = nil
		}
		c, ok := <-t.ch
		if !ok {
			return 0, t.err
		}
		t.cur, t.off = c, 0
	}
	n := copy(p, t.cur[t.off:])
	t.off += n
	return n, nil
}

// discard is called by the reader when it stops reading: the remaining and
// later writes are dropped.
func (t *chunkTee) discard() {
	close(t.dropped)
	for range t.ch {
	}
}

func blobError() error {
	return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "blob_write_failed",
		Message: "the file store cannot be written right now; retry later (the cause is in the server log)"}
}

func (s *Service) handleGetImport(w http.ResponseWriter, r *http.Request) {
	s.handleGet(w, r, "import")
}
func (s *Service) handleGetExport(w http.ResponseWriter, r *http.Request) {
	s.handleGet(w, r, "export")
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request, kind string) {
	p, err := s.principal(r)
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	id := r.PathValue("id")
	notFound := apierr.NotFound("no %s job %q: check the id (jobs are visible only to whoever created them)", kind, id)
	if _, err := uuid.Parse(id); err != nil {
		apierr.Write(w, r, notFound)
		return
	}
	rec, err := s.getJob(r.Context(), id)
	if errors.Is(err, errNoJob) || (err == nil && (rec.OwnerID != ownerID(p) || rec.Kind != kind)) {
		apierr.Write(w, r, notFound)
		return
	}
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, s.view(rec))
}

// exportRequest is the body of POST …/export/.
type exportRequest struct {
	ExportFormat string `json:"export_format"`
	FileName     string `json:"file_name"`
	QueryString  string `json:"query_string"`
	TableName    string `json:"table_name"`
	SchemaName   string `json:"schema_name"`
}

func (s *Service) handleCreateExport(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	target, err := s.resolver.Resolve(r.Context(), r.PathValue("account")+"/"+r.PathValue("db"))
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	var req exportRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		apierr.Write(w, r, apierr.BadRequest("invalid_request", "the request body is unreadable or larger than 1 MiB"))
		return
	}
	if err := jsonx.Unmarshal(body, &req); err != nil {
		apierr.Write(w, r, apierr.BadRequest("invalid_json", "the body is not a JSON object with export_format, file_name and query_string or table_name: %v", err))
		return
	}
	if req.ExportFormat == "" {
		req.ExportFormat = export.CSV
	}
	req.ExportFormat = strings.ToLower(req.ExportFormat)
	if req.ExportFormat == "xlsx" {
		req.ExportFormat = export.XLS
	}
	if !export.Valid(req.ExportFormat) {
		apierr.Write(w, r, &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "export_format",
			Message: fmt.Sprintf("export_format %q is unknown: use csv, json, xls or parquet", req.ExportFormat)})
		return
	}
	q := strings.TrimSpace(req.QueryString)
	switch {
	case q != "" && req.TableName != "":
		apierr.Write(w, r, apierr.BadRequest("invalid_request", "send either query_string or table_name, not both"))
		return
	case q == "" && req.TableName == "":
		apierr.Write(w, r, apierr.BadRequest("invalid_request", "send query_string or table_name (with schema_name, default public)"))
		return
	case q == "":
		q = export.TableQuery(req.SchemaName, req.TableName)
	}
	name := sanitizeFileName(req.FileName)
	if name == "" {
		base := "export"
		if req.TableName != "" {
			base = req.TableName
		}
		name = sanitizeFileName(base + export.Extension(req.ExportFormat))
	}
	rec := &record{ID: uuid.NewString(), Kind: "export", OwnerID: ownerID(p), CredentialID: optional(p.CredentialID),
		AccountID: optional(p.AccountID), DatabaseID: target.DatabaseID, DatabaseName: target.FullName,
		PGDatabase: target.PGDatabase, PGRole: target.PGRole, Params: params{Query: q}, ExportFormat: &req.ExportFormat, FileName: &name}
	if err := s.insertJob(r.Context(), rec); err != nil {
		apierr.Write(w, r, err)
		return
	}
	apierr.WriteJSON(w, http.StatusAccepted, s.view(rec))
}

// sanitizeFileName keeps a file name safe for Content-Disposition: the base
// name, without control characters, quotes or backslashes, at most 200 bytes.
func sanitizeFileName(n string) string {
	n = path.Base(strings.ReplaceAll(strings.TrimSpace(n), `\`, "/"))
	if n == "." || n == "/" {
		return ""
	}
	var sb strings.Builder
	for _, r := range n {
		if r < 0x20 || r == 0x7f || r == '"' || r == ';' {
			continue
		}
		sb.WriteRune(r)
	}
	out := sb.String()
	if len(out) > 200 {
		out = out[:200]
		for !utfValid(out) {
			out = out[:len(out)-1]
		}
	}
	return out
}

func utfValid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func exportKey(id string) string { return "exports/" + id }

// handleDownload serves an export file to whoever holds a valid token.
func (s *Service) handleDownload(w http.ResponseWriter, r *http.Request) {
	id, err := verifyToken(s.key, r.PathValue("token"), s.now())
	switch {
	case errors.Is(err, errTokenExpired):
		apierr.Write(w, r, apierr.New(http.StatusGone, "download_expired", "this download URL has expired: GET the export job again for a fresh download_url"))
		return
	case err != nil:
		apierr.Write(w, r, apierr.Forbidden("this download URL is not valid (it was altered or cut): GET the export job for its download_url"))
		return
	}
	rec, err := s.getJob(r.Context(), id)
	if err != nil || rec.Kind != "export" || rec.State != StateDone || rec.BlobKey == nil {
		if err != nil && !errors.Is(err, errNoJob) {
			apierr.Write(w, r, err)
			return
		}
		apierr.Write(w, r, apierr.NotFound("the export file no longer exists"))
		return
	}
	if s.exportExpired(rec, false) {
		apierr.Write(w, r, exportExpiredError(rec))
		return
	}
	br, err := s.bucket.NewReader(r.Context(), *rec.BlobKey, nil)
	if err != nil {
		if errBlobNotFound(err) {
			// a sweep may be deleting it right now: read the row again
			if again, gerr := s.getJob(r.Context(), id); gerr == nil && s.exportExpired(again, true) {
				apierr.Write(w, r, exportExpiredError(again))
				return
			}
		} else {
			s.log.WarnContext(r.Context(), "export file unreadable", "job", id, "err", err)
		}
		apierr.Write(w, r, apierr.NotFound("the export file no longer exists"))
		return
	}
	defer br.Close()
	format := ""
	if rec.ExportFormat != nil {
		format = *rec.ExportFormat
	}
	name := "export" + export.Extension(format)
	if rec.FileName != nil && *rec.FileName != "" {
		name = *rec.FileName
	}
	w.Header().Set("Content-Type", export.ContentType(format))
	w.Header().Set("Content-Disposition", contentDisposition(name))
	w.Header().Set("Content-Length", strconv.FormatInt(br.Size(), 10))
	w.Header().Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, br); err != nil {
		s.log.WarnContext(r.Context(), "download cut off", "job", id, "err", err)
	}
}

// expiredMessage tells the owner of an export whose file was deleted what
// happened and what to do.
func expiredMessage(rec *record) string {
	when := "after its retention period"
	if rec.FileDeletedAt != nil {
		when = "on " + rec.FileDeletedAt.UTC().Format(time.RFC3339)
	}
	return "the export file expired " + when + " and was deleted from the file store: run the export again for a new file"
}

// exportExpiredError is the 410 of a download whose export file expired
// (distinct from download_expired, an expired download URL).
func exportExpiredError(rec *record) error {
	return apierr.New(http.StatusGone, "export_expired", "%s", expiredMessage(rec))
}

// contentDisposition names the file: an ASCII fallback plus RFC 5987
// filename* for names with other characters.
func contentDisposition(name string) string {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		return `attachment; filename="` + name + `"`
	}
	fallback := strings.Map(func(r rune) rune {
		if r >= 0x80 {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + fallback + `"; filename*=UTF-8''` + url.PathEscape(name)
}
