package fnhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/fnhttp"
)

func TestStatusAndBody(t *testing.T) {
	t.Parallel()
	sqlErr := &core.APIError{StatusCode: 400, Code: "sql_error", Message: `relation "x" does not exist`, SQLState: "42P01", Position: 15, RequestID: "r1"}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		wantFields map[string]any
	}{
		{"sql error wrapped", fmt.Errorf("my handler: %w", sqlErr), 400, "sql_error", map[string]any{"sqlstate": "42P01", "position": float64(15), "request_id": "r1"}},
		{"bitd 500 is 502", &core.APIError{StatusCode: 500, Code: "internal", Message: "boom"}, 502, "internal", nil},
		{"bitd 503 without a body", &core.APIError{StatusCode: 503}, 502, "service_unavailable", nil},
		{"deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), 504, "timeout", nil},
		{"statement timeout", &core.APIError{StatusCode: 400, Code: "query_timeout", Message: "canceling statement"}, 504, "timeout", nil},
		{"canceled", context.Canceled, 503, "canceled", nil},
		{"unreachable", errors.New("core: GET http://127.0.0.1:1/v2beta/db/: connection refused"), 502, "upstream_unreachable", nil},
		{"own Error passes through", &fnhttp.Error{Status: 418, Code: "teapot", Message: "short and stout"}, 418, "teapot", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := fnhttp.Status(tc.err)
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if status != tc.status || m["code"] != tc.code || m["error"] == "" {
				t.Fatalf("status %d body %s; want %d code %s", status, body, tc.status, tc.code)
			}
			for k, v := range tc.wantFields {
				if m[k] != v {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	fnhttp.WriteError(rec, &core.APIError{StatusCode: 401, Code: "unauthorized", Message: "bad key"})
	if rec.Code != 401 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != `{"error":"bad key","code":"unauthorized"}` {
		t.Fatalf("%d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = httptest.NewRecorder()
	fnhttp.WriteError(rec, nil)
	if rec.Body.Len() != 0 || fnhttp.Classify(nil, 0, "") != nil {
		t.Fatal("a nil error wrote an answer")
	}
}
