package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
)

// TestHandlerFuncAnswersAsApierrWrite: a returned error is answered exactly
// as apierr.Write answers it (status, headers, body), and a nil return
// leaves the handler's own answer alone.
func TestHandlerFuncAnswersAsApierrWrite(t *testing.T) {
	t.Parallel()
	limited := apierr.New(http.StatusTooManyRequests, "rate_limited", "too many failed logins; try again in 3 seconds")
	limited.RetryAfter = 3 * time.Second
	field := apierr.BadRequest("invalid_field", "role %q is not a collaborator role", "x")
	field.Field = "role"
	for name, err := range map[string]error{
		"api error":      apierr.NotFound("database %q not found", "a/b"),
		"retry after":    limited,
		"field":          field,
		"wrapped":        fmt.Errorf("looking up: %w", apierr.Forbidden("no")),
		"internal":       errors.New("store: connection refused to 10.0.0.1"),
		"context ended":  context.DeadlineExceeded,
		"client went":    context.Canceled,
		"joined unknown": errors.Join(nil, errors.New("service account vanished after creation")),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequestWithContext(apierr.WithRequestID(t.Context(), "rid-1"), "GET", "/v2beta/x", nil)
			want := httptest.NewRecorder()
			apierr.Write(want, req, err)
			got := httptest.NewRecorder()
			handlerFunc(func(http.ResponseWriter, *http.Request) error { return err }).ServeHTTP(got, req)
			if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || got.Body.String() != want.Body.String() {
				t.Fatalf("adapter answered %d %v %s; apierr.Write answers %d %v %s",
					got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
			if got.Code < 400 {
				t.Fatalf("error %v answered %d", err, got.Code)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			apierr.WriteJSON(w, http.StatusCreated, map[string]string{"id": "x"})
			return nil
		}).ServeHTTP(rec, httptest.NewRequest("POST", "/v2beta/x", nil))
		if rec.Code != http.StatusCreated || rec.Body.String() != "{\"id\":\"x\"}\n" {
			t.Fatalf("answer %d %q; want 201 {\"id\":\"x\"} only", rec.Code, rec.Body)
		}
	})
}

// TestErrorAnswersCounted: every error answer a handler returns through
// the Server is counted in bitd_http_errors_total under its route pattern
// (or "unmatched") and its code; successful answers are not.
func TestErrorAnswersCounted(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m})
	s.Handle("GET /v2beta/busy", handlerFunc(func(http.ResponseWriter, *http.Request) error {
		e := apierr.New(http.StatusServiceUnavailable, "database_busy", "no connection became free; retry shortly")
		e.RetryAfter = time.Second
		return e
	}), Public)
	s.Handle("GET /v2beta/fine", handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		apierr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}), Public)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	for _, p := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v2beta/busy", 503},
		{"GET", "/v2beta/busy/", 503},
		{"GET", "/v2beta/busy", 503},
		{"GET", "/v2beta/fine", 200},
		{"GET", "/v2beta/nowhere", 404},
		{"PUT", "/v2beta/fine", 405},
		{"GET", "/v2beta/db/", 401}, // a route that needs a credential
	} {
		req, _ := http.NewRequestWithContext(t.Context(), p.method, ts.URL+p.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != p.status {
			t.Fatalf("%s %s answered %d, want %d", p.method, p.path, res.StatusCode, p.status)
		}
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "bitd_http_errors_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var route, code string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[route+" "+code] = mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"GET /v2beta/busy database_busy":     2,
		"GET /v2beta/busy/{$} database_busy": 1,
		"unmatched not_found":                1,
		"unmatched method_not_allowed":       1,
		"GET /v2beta/db unauthorized":        0, // the request had the trailing slash
		"GET /v2beta/db/{$} unauthorized":    1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("bitd_http_errors_total %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("counted %v; want exactly the five error series", got)
	}
}
