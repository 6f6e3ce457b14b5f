// Package httpcomp compresses bitd's JSON and NDJSON answers and decodes
// gzip-compressed request bodies.
//
// Handler wraps an http.Handler:
//
//   - Answers whose Content-Type is application/json or
//     application/x-ndjson are compressed with zstd or gzip when the
//     request's Accept-Encoding allows it (zstd preferred at equal q-value).
//     Tiny answers (below MinSize bytes) are sent as they are. Answers that
//     already have a Content-Encoding, a Content-Range or a
//     Content-Disposition (downloads such as export files), HEAD requests
//     and 204/206/304 answers are never touched.
//   - Compression follows the handler's flushes: a Flush (directly or
//     through http.ResponseController) flushes the compressor and the
//     connection, so a streamed NDJSON answer delivers each batch of rows
//     when the handler sends it, compressed.
//   - A request with Content-Encoding: gzip has its body decompressed as the
//     handler reads it; the handler's own body limits (http.MaxBytesReader)
//     then count decompressed bytes, so a "gzip bomb" ends at the route's
//     limit without being inflated further. Other request encodings are
//     refused with 415.
//
// The writer handed to the inner handler implements Unwrap, so
// http.ResponseController reaches deadlines on the connection.
package httpcomp

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// MinSize is the smallest answer that is compressed, in bytes. Smaller
// answers cost more to compress than they save.
const MinSize = 1024

// zstdWindow bounds the memory of one zstd stream (encoder history) and
// stays within the 8 MiB that HTTP zstd decoders must support (RFC 8878).
const zstdWindow = 1 << 20

// Handler returns h with compressed answers and decoded request bodies (see
// the package documentation).
func Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			var err error
			if r, err = decodeRequest(r); err != nil {
				w.Header().Set("Accept-Encoding", "gzip")
				apierr.Write(w, r, err)
				return
			}
		}
		enc := negotiate(r.Header.Values("Accept-Encoding"))
		if enc == "" && !mayCompress(r) {
			h.ServeHTTP(w, r)
			return
		}
		cw := &writer{ResponseWriter: w, method: r.Method, enc: enc}
		h.ServeHTTP(cw, r)
		cw.finish()
	})
}

// mayCompress reports whether answers to r could differ by Accept-Encoding
// (they then carry Vary: Accept-Encoding even when not compressed).
func mayCompress(r *http.Request) bool { return r.Method != http.MethodHead }

type decodedKey struct{}

// Decoded reports whether r's body arrived gzip-compressed and is being
// decompressed by Handler (body limits then count decompressed bytes).
func Decoded(r *http.Request) bool {
	v, _ := r.Context().Value(decodedKey{}).(bool)
	return v
}

// decodeRequest returns r with a gzip-encoded body replaced by its
// decompressed form.
func decodeRequest(r *http.Request) (*http.Request, error) {
	ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch ce {
	case "", "identity":
		return r, nil
	case "gzip", "x-gzip":
	default:
		return r, apierr.New(http.StatusUnsupportedMediaType, "unsupported_content_encoding",
			"the request body's Content-Encoding %q is not supported: send it uncompressed or with Content-Encoding: gzip", ce)
	}
	r = r.WithContext(context.WithValue(r.Context(), decodedKey{}, true))
	r.Header = r.Header.Clone()
	r.Header.Del("Content-Encoding")
	r.Header.Del("Content-Length")
	r.ContentLength = -1
	r.Body = &gzipBody{src: &errRecorder{r: r.Body}, closer: r.Body}
	return r, nil
}

// errRecorder remembers the last error of the compressed source, so that
// gzipBody can tell a broken connection from broken gzip data.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// gzipBody decompresses a request body; the gzip header is read on the
// first Read, not before the handler asks for the body.
type gzipBody struct {
	src    *errRecorder
	closer io.Closer
	zr     *gzip.Reader
	err    error
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.zr == nil {
		zr, err := gzip.NewReader(g.src)
		if err != nil {
			g.err = g.wrap(err)
			return 0, g.err
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		g.err = g.wrap(err)
		err = g.err
	}
	return n, err
}

// wrap passes errors of the source through (timeouts, a connection that
// ended) and turns errors of the gzip data into a 400.
func (g *gzipBody) wrap(err error) error {
	if g.src.err != nil && errors.Is(err, g.src.err) {
		return err
	}
	var ce flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) {
		return apierr.BadRequest("invalid_body",
			"the request body says Content-Encoding: gzip but is not complete, valid gzip data (%v): compress the whole body with gzip, or send it uncompressed without that header", err)
	}
	return err
}

func (g *gzipBody) Close() error { return g.closer.Close() }

// negotiate picks "zstd", "gzip" or "" from Accept-Encoding values: the
// highest q-value wins, zstd before gzip when equal; "*" stands for gzip
// unless gzip is listed.
func negotiate(values []string) string {
	qz, qg, qstar := -1.0, -1.0, -1.0
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(tok, ";")
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil {
						f = 0
					}
					q = f
				}
			}
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "zstd":
				qz = q
			case "gzip", "x-gzip":
				qg = q
			case "*":
				qstar = q
			}
		}
	}
	if qg < 0 {
		qg = qstar
	}
	switch {
	case qz > 0 && qz >= qg:
		return "zstd"
	case qg > 0:
		return "gzip"
	}
	return ""
}

// compressible reports whether a Content-Type is one Handler compresses.
func compressible(contentType string) bool {
	switch contentType { // what bitd sets, without parsing
	case "application/json", "application/x-ndjson", "application/json; charset=utf-8":
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "application/x-ndjson"
}

type state int

const (
	undecided state = iota
	passthrough
	compressing
)

// encoder is a pooled gzip or zstd compressor.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(w io.Writer)
}

var (
	gzipPool = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return zw
	}}
	zstdPool = sync.Pool{New: func() any {
		zw, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow))
		return zw
	}}
)

// writer holds back the first MinSize bytes of an eligible answer until it
// knows whether to compress it, then either compresses or passes through.
type writer struct {
	http.ResponseWriter
	method string
	enc    string // "zstd", "gzip" or "" (not accepted)
	state  state
	status int
	buf    []byte
	zw     encoder
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *writer) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: not the answer
		return
	}
	if w.status != 0 {
		return
	}
	w.status = code
	w.decideEarly()
}

func (w *writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.decideEarly()
	}
	switch w.state {
	case passthrough:
		return w.ResponseWriter.Write(p)
	case compressing:
		return w.zw.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= MinSize {
		if err := w.decide(true); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// FlushError flushes the compressor and the connection
// (http.ResponseController.Flush calls it).
func (w *writer) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
		w.decideEarly()
	}
	if w.state == undecided {
		// A flush means the handler streams: compress if eligible.
		if err := w.decide(true); err != nil {
			return err
		}
	}
	if w.state == compressing {
		if err := w.zw.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (w *writer) Flush() { _ = w.FlushError() }

// eligible reports whether the answer may be compressed, from its status
// and headers (not its size).
func (w *writer) eligible() bool { return w.enc != "" && w.varies() }

// varies reports whether the answer would be compressed for a client that
// asks (size aside): it then carries Vary: Accept-Encoding.
func (w *writer) varies() bool {
	h := w.ResponseWriter.Header()
	switch {
	case w.method == http.MethodHead,
		w.status == http.StatusNoContent, w.status == http.StatusNotModified, w.status == http.StatusPartialContent,
		h.Get("Content-Encoding") != "", h.Get("Content-Range") != "", h.Get("Content-Disposition") != "",
		!compressible(h.Get("Content-Type")):
		return false
	}
	return true
}

// decideEarly settles what the headers alone settle once the status is
// known: not eligible means pass through, a Content-Length below MinSize
// too, one at or above it means compress.
func (w *writer) decideEarly() {
	h := w.ResponseWriter.Header()
	if w.varies() {
		h.Add("Vary", "Accept-Encoding")
	}
	if !w.eligible() {
		w.start(passthrough)
		return
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			if n < MinSize {
				w.start(passthrough)
			} else {
				w.start(compressing)
			}
		}
	}
}

// decide ends the undecided state: compress when eligible and big enough
// (or big enough is unknowable: a flush), then send what was held back.
func (w *writer) decide(compress bool) error {
	if compress && w.eligible() {
		w.start(compressing)
	} else {
		w.start(passthrough)
	}
	if len(w.buf) == 0 {
		return nil
	}
	b := w.buf
	w.buf = nil
	var err error
	if w.state == compressing {
		_, err = w.zw.Write(b)
	} else {
		_, err = w.ResponseWriter.Write(b)
	}
	return err
}

// start sends the header in the chosen state.
func (w *writer) start(s state) {
	w.state = s
	if s == compressing {
		h := w.ResponseWriter.Header()
		h.Del("Content-Length")
		h.Set("Content-Encoding", w.enc)
		if w.enc == "zstd" {
			w.zw = zstdPool.Get().(*zstd.Encoder)
		} else {
			w.zw = gzipPool.Get().(*gzip.Writer)
		}
		w.zw.Reset(w.ResponseWriter)
	}
	w.ResponseWriter.WriteHeader(w.status)
}

// finish runs after the handler returned: it sends what was held back and
// ends the compressed stream.
func (w *writer) finish() {
	if w.status == 0 {
		return // nothing written: net/http answers 200 with no body
	}
	if w.state == undecided {
		_ = w.decide(len(w.buf) >= MinSize)
	}
	if w.state == compressing && w.zw != nil {
		_ = w.zw.Close()
		w.zw.Reset(nil)
		switch zw := w.zw.(type) {
		case *zstd.Encoder:
			zstdPool.Put(zw)
		case *gzip.Writer:
			gzipPool.Put(zw)
		}
		w.zw = nil
	}
}
