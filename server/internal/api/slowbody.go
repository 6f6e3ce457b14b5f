package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// StallDeadline serves h with a request body that may take as long as it
// needs while it keeps arriving: every read of it must complete within
// stall, which replaces the server's whole-body read timeout
// (http.Server.ReadTimeout) for the route. A client that sends nothing for
// stall loses its upload: the body read fails with a 408 body_timeout
// *apierr.Error, which handlers that pass *apierr.Error values through
// answer as is.
// It suits large uploads; stall <= 0 leaves h as it is.
func StallDeadline(stall time.Duration, h http.Handler) http.Handler {
	if stall <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			sr := &stallReader{ReadCloser: r.Body, rc: http.NewResponseController(w), stall: stall}
			// Before the handler's first read: the server's deadline for the
			// whole request may be closer than a stall.
			sr.extend(time.Now())
			r.Body = sr
		}
		h.ServeHTTP(w, r)
	})
}

// stallReader moves the connection's read deadline stall ahead before each
// read (at most once per stallStep, so a read costs no timer update).
type stallReader struct {
	io.ReadCloser
	rc       *http.ResponseController
	stall    time.Duration
	extended time.Time
}

const stallStep = time.Second

func (s *stallReader) extend(now time.Time) {
	if err := s.rc.SetReadDeadline(now.Add(s.stall)); err == nil {
		s.extended = now
	}
}

func (s *stallReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(s.extended) >= stallStep {
		s.extend(now)
	}
	n, err := s.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = apierr.New(http.StatusRequestTimeout, "body_timeout",
			"the upload sent nothing for %s (the server's --http-read-timeout), so it was ended; send it again", s.stall)
	}
	return n, err
}
