package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// errorHandler is a job route's handler: it writes its answer, or returns
// the error to answer with instead (before it has written anything), which
// apierr.HandlerFunc, bitd's one adapter, writes and counts.
type errorHandler = apierr.HandlerFunc

func (s *Service) principal(r *http.Request) (*authn.Principal, error) {
	p := authn.From(r.Context())
	if p == nil {
		return nil, apierr.Unauthorized("this route needs an API key or access token: send Authorization: Bearer <key>")
	}
	return p, nil
}

// newJob is the policy of the routes that create jobs: the caller is signed
// in (else 401) and may use the database of the path, {account}/{db} (the
// resolver answers 404 for a database it may not see). It returns the new
// job's record with its kind, owner and target database.
func (s *Service) newJob(r *http.Request, kind string) (*record, error) {
	p, err := s.principal(r)
	if err != nil {
		return nil, err
	}
	target, err := s.resolver.Resolve(r.Context(), r.PathValue("account")+"/"+r.PathValue("db"))
	if err != nil {
		return nil, err
	}
	return &record{ID: uuid.NewString(), Kind: kind, OwnerID: ownerID(p), CredentialID: optional(p.CredentialID),
		AccountID: optional(p.AccountID), DatabaseID: target.DatabaseID, DatabaseName: target.FullName,
		PGDatabase: target.PGDatabase, PGRole: target.PGRole}, nil
}

// handleCreateImport records an import job: who may import where (newJob),
// the request's form fields and file (the upload, streamed into the blob
// store and perhaps loaded on the way, upload.go), the checks of the
// fields, then the job. A file stored for a job that is not recorded is
// deleted when the request ends.
func (s *Service) handleCreateImport(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.newJob(r, "import")
	if err != nil {
		return err
	}
	// A file_url import may also come as a URL-encoded form (python-bitdotio's
	// create_import_job(file_url=…)): its fields are read here and there are
	// no parts.
	fields, mr, err := importForm(w, r)
	if err != nil {
		return err
	}
	up := s.newUpload(r.Context(), rec)
	defer up.close()
	if err := up.readParts(fields, mr); err != nil {
		return err
	}
	// All the fields are read now: they replace the early ones the fast
	// path saw; the file's name and CSV profile stay.
	upload, prof := rec.Params.UploadName, rec.Params.CSVProfile
	rec.Params = importParams(fields)
	rec.Params.UploadName, rec.Params.CSVProfile = upload, prof
	if err := validateImport(&rec.Params, up.stored); err != nil {
		return err
	}
	if up.stored {
		k := uploadKey(rec.ID)
		rec.BlobKey = &k
		rec.BytesTotal = up.size
	}
	if err := s.recordImport(r.Context(), up, rec); err != nil {
		return err
	}
	up.keep()
	apierr.WriteJSON(w, http.StatusAccepted, s.view(rec))
	return nil
}

// recordImport records an import job whose request is read and checked:
// the fast path's outcome when it loaded the file (finishFast), else a new
// job for the workers.
func (s *Service) recordImport(ctx context.Context, up *upload, rec *record) error {
	if up.fast != nil {
		recorded, err := s.finishFast(ctx, up.fast, rec, up.size)
		if err != nil || recorded {
			return err
		}
		rec.State, rec.LoadXID, rec.Rows, rec.BytesDone = "", nil, 0, 0
	}
	return s.insertJob(ctx, rec)
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

func (s *Service) handleGetImport(w http.ResponseWriter, r *http.Request) error {
	return s.handleGet(w, r, "import")
}
func (s *Service) handleGetExport(w http.ResponseWriter, r *http.Request) error {
	return s.handleGet(w, r, "export")
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request, kind string) error {
	p, err := s.principal(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	notFound := apierr.NotFound("no %s job %q: check the id (jobs are visible only to whoever created them)", kind, id)
	if _, err := uuid.Parse(id); err != nil {
		return notFound
	}
	rec, err := s.getJob(r.Context(), id)
	if errors.Is(err, errNoJob) || (err == nil && (rec.OwnerID != ownerID(p) || rec.Kind != kind)) {
		return notFound
	}
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, s.view(rec))
	return nil
}

// exportRequest is the body of POST …/export/.
type exportRequest struct {
	ExportFormat string `json:"export_format"`
	FileName     string `json:"file_name"`
	QueryString  string `json:"query_string"`
	TableName    string `json:"table_name"`
	SchemaName   string `json:"schema_name"`
}

// handleCreateExport records an export job: who may export from where
// (newJob), then the request's body (readExport), then the job.
func (s *Service) handleCreateExport(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.newJob(r, "export")
	if err != nil {
		return err
	}
	if err := readExport(r, rec); err != nil {
		return err
	}
	if err := s.insertJob(r.Context(), rec); err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusAccepted, s.view(rec))
	return nil
}

// readExport reads and checks an export request's JSON body into rec: the
// query (query_string, or the one that reads table_name), the format
// (default csv) and the file name (default from the table and format).
func readExport(r *http.Request, rec *record) error {
	var req exportRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		return apierr.BadRequest("invalid_request", "the request body is unreadable or larger than 1 MiB")
	}
	if err := jsonx.Unmarshal(body, &req); err != nil {
		return apierr.BadRequest("invalid_json", "the body is not a JSON object with export_format, file_name and query_string or table_name: %v", err)
	}
	if req.ExportFormat == "" {
		req.ExportFormat = export.CSV
	}
	req.ExportFormat = strings.ToLower(req.ExportFormat)
	if req.ExportFormat == "xlsx" {
		req.ExportFormat = export.XLS
	}
	if !export.Valid(req.ExportFormat) {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "export_format",
			Message: fmt.Sprintf("export_format %q is unknown: use csv, json, xls or parquet", req.ExportFormat)}
	}
	q := strings.TrimSpace(req.QueryString)
	switch {
	case q != "" && req.TableName != "":
		return apierr.BadRequest("invalid_request", "send either query_string or table_name, not both")
	case q == "" && req.TableName == "":
		return apierr.BadRequest("invalid_request", "send query_string or table_name (with schema_name, default public)")
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
	rec.Params, rec.ExportFormat, rec.FileName = params{Query: q}, &req.ExportFormat, &name
	return nil
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
func (s *Service) handleDownload(w http.ResponseWriter, r *http.Request) error {
	id, err := verifyToken(s.key, r.PathValue("token"), s.now())
	switch {
	case errors.Is(err, errTokenExpired):
		return apierr.New(http.StatusGone, "download_expired", "this download URL has expired: GET the export job again for a fresh download_url")
	case err != nil:
		return apierr.Forbidden("this download URL is not valid (it was altered or cut): GET the export job for its download_url")
	}
	rec, err := s.getJob(r.Context(), id)
	if err != nil || rec.Kind != "export" || rec.State != StateDone || rec.BlobKey == nil {
		if err != nil && !errors.Is(err, errNoJob) {
			return err
		}
		return apierr.NotFound("the export file no longer exists")
	}
	if s.exportExpired(rec, false) {
		return exportExpiredError(rec)
	}
	br, err := s.bucket.NewReader(r.Context(), *rec.BlobKey, nil)
	if err != nil {
		if errBlobNotFound(err) {
			// a sweep may be deleting it right now: read the row again
			if again, gerr := s.getJob(r.Context(), id); gerr == nil && s.exportExpired(again, true) {
				return exportExpiredError(again)
			}
		} else {
			s.log.WarnContext(r.Context(), "export file unreadable", "job", id, "err", err)
		}
		return apierr.NotFound("the export file no longer exists")
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
	return nil
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
