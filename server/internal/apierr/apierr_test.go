package apierr_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestAsPgErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
		notIn      string
	}{
		{"syntax", &pgconn.PgError{Code: "42601", Message: "syntax error"}, http.StatusBadRequest, "sql_error", false, ""},
		{"bitd login refused", &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "bk_0123_reader"`},
			http.StatusServiceUnavailable, "database_unavailable", true, "bk_0123_reader"},
		{"bitd login refused (wrapped)", errors.Join(errors.New("connect"), &pgconn.PgError{Code: "28000", Message: `no pg_hba.conf entry for role "bk_0123_owner"`}),
			http.StatusServiceUnavailable, "database_unavailable", true, "bk_0123_owner"},
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating connection"}, http.StatusServiceUnavailable, "database_unavailable", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := apierr.As(tc.err)
			if e.Status != tc.status || e.Code != tc.code || (e.RetryAfter > 0) != tc.retryAfter {
				t.Errorf("As = %d %s retry-after %v; want %d %s retry-after %v", e.Status, e.Code, e.RetryAfter, tc.status, tc.code, tc.retryAfter)
			}
			if tc.notIn != "" && strings.Contains(e.Message+e.Detail+e.Hint, tc.notIn) {
				t.Errorf("answer names the internal role %q: %q", tc.notIn, e.Message)
			}
		})
	}
}
