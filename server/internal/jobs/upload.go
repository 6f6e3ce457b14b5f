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

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/ingest"
	gblob "gocloud.dev/blob"
)

// The upload pipeline of an import request: the body's shapes (a
// multipart/form-data upload, or a URL-encoded form that names a file_url),
// the file part streamed into the blob store with the CSV inference pass
// beside it, and the hand-off to the fast path (fastpath.go) when the
// fields sent before the file allow it.

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

// upload is the body of one import request being read: its file part, once
// stored, belongs to the request until the job is recorded.
type upload struct {
	s   *Service
	ctx context.Context
	rec *record // the job being created; its upload name and CSV profile are set here
	// fast is the fast-path attempt that loads the file while it streams
	// in, or nil.
	fast *fastLoad
	// stored says a file part was written (or partly written) to the blob
	// store under uploadKey(rec.ID); size is its length.
	stored bool
	size   int64
	// kept says the job now owns the stored file.
	kept bool
}

func (s *Service) newUpload(ctx context.Context, rec *record) *upload {
	return &upload{s: s, ctx: ctx, rec: rec}
}

// readParts reads a multipart body (mr; nil for a URL-encoded form, whose
// fields are read already): the file part is stored, the other parts are
// form fields added to fields.
func (u *upload) readParts(fields map[string]string, mr *multipart.Reader) error {
	for mr != nil {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return apierr.BadRequest("invalid_request", "the multipart body cannot be read: %v", err)
		}
		name := part.FormName()
		if name == "file" {
			if err := u.storeFile(part, fields); err != nil {
				return err
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 64<<10+1))
		if err != nil || len(v) > 64<<10 {
			return apierr.BadRequest("invalid_request", "form field %q is unreadable or longer than 64 KiB", name)
		}
		fields[name] = string(v)
	}
	return nil
}

// storeFile stores the file part. The form fields sent before it (fields,
// so far) decide whether it can be loaded while it streams in (the fast
// path).
func (u *upload) storeFile(part *multipart.Part, fields map[string]string) error {
	if u.stored {
		return apierr.BadRequest("invalid_request", "send exactly one file part")
	}
	u.rec.Params.UploadName = part.FileName()
	early := importParams(fields)
	early.UploadName = u.rec.Params.UploadName
	u.fast = u.s.newFastLoad(u.ctx, u.rec, early)
	var err error
	u.size, u.rec.Params.CSVProfile, err = u.s.storeUpload(u.ctx, u.rec.ID, part, u.fast)
	u.stored = true
	return err
}

// keep hands the stored file (if any) to the recorded job.
func (u *upload) keep() { u.kept = true }

// close releases what the request still holds: the stored file of a job
// that was not recorded, and the fast-path attempt (nothing it did stays
// uncommitted).
func (u *upload) close() {
	if u.stored && !u.kept {
		_ = u.s.bucket.Delete(context.WithoutCancel(u.ctx), uploadKey(u.rec.ID))
	}
	if u.fast != nil {
		u.fast.close()
	}
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
