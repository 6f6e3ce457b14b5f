package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
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
