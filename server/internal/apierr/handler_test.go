package apierr_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// countingWriter is a response writer that counts error answers, as
// bitd's access log's writer does.
type countingWriter struct {
	http.ResponseWriter
	codes []string
}

func (w *countingWriter) CountError(code string) { w.codes = append(w.codes, code) }

// wrapper is a middleware's writer (compression, say) between the counting
// writer and the handler.
type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestHandlerFuncCountsErrors: a returned error is counted once with the
// code it was answered with, through writers that wrap the counting one;
// a handler that answers itself is not counted.
func TestHandlerFuncCountsErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		err    error
		status int
		code   string
	}{
		"api error": {apierr.NotFound("database %q not found", "a/b"), http.StatusNotFound, "not_found"},
		"wrapped":   {errors.Join(errors.New("ctx"), apierr.Conflict("taken")), http.StatusConflict, "conflict"},
		"internal":  {errors.New("store: connection refused"), http.StatusInternalServerError, "internal"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			cw := &countingWriter{ResponseWriter: rec}
			apierr.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return tc.err }).
				ServeHTTP(wrapper{wrapper{cw}}, httptest.NewRequest("GET", "/v2beta/x", nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if len(cw.codes) != 1 || cw.codes[0] != tc.code {
				t.Fatalf("counted %q, want [%s]", cw.codes, tc.code)
			}
		})
	}
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		cw := &countingWriter{ResponseWriter: rec}
		apierr.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			apierr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return nil
		}).ServeHTTP(cw, httptest.NewRequest("GET", "/v2beta/x", nil))
		if rec.Code != http.StatusOK || len(cw.codes) != 0 {
			t.Fatalf("answer %d, counted %q; want 200 and nothing counted", rec.Code, cw.codes)
		}
	})
	t.Run("no counter", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		apierr.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return apierr.Forbidden("no") }).
			ServeHTTP(wrapper{rec}, httptest.NewRequest("GET", "/v2beta/x", nil))
		if rec.Code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", rec.Code)
		}
	})
}

// The adapter costs a successful request no allocation.
func TestHandlerFuncSuccessAllocs(t *testing.T) {
	w := &countingWriter{ResponseWriter: httptest.NewRecorder()}
	r := httptest.NewRequest("GET", "/v2beta/x", nil)
	h := apierr.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Fatalf("a successful request allocated %v times in the adapter, want 0", n)
	}
}
