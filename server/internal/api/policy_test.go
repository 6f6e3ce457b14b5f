package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// The API's policy decisions, apart from the routes that apply them (the
// end-to-end tests in cmd/bitd drive the same rules through real requests).

func status(err error) int {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestMayCreateIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role   string
		status int // 0: allowed
		says   string
	}{
		{"OWNER", 0, ""},
		{"ADMIN", 0, ""},
		{"WRITER", http.StatusForbidden, `your role in account "Team" is WRITER: creating there needs OWNER or ADMIN`},
		{"READER", http.StatusForbidden, "is READER"},
		{"", http.StatusNotFound, `account "team" not found, or you are not a member`},
	} {
		t.Run("role "+tc.role, func(t *testing.T) {
			t.Parallel()
			err := mayCreateIn("team", "Team", tc.role)
			if got := status(err); got != tc.status || (err == nil) != (tc.status == 0) {
				t.Fatalf("mayCreateIn(role %q) = %v (status %d), want status %d", tc.role, err, got, tc.status)
			}
			if err != nil && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("message %q does not say %q", err.Error(), tc.says)
			}
		})
	}
}

func TestRequireAdmin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role   string
		status int
	}{
		{"OWNER", 0},
		{"ADMIN", 0},
		{"WRITER", http.StatusForbidden},
		{"READER", http.StatusForbidden},
	} {
		d := &store.Database{AccountName: "alice", Name: "db", Role: tc.role}
		err := requireAdmin(d, "renaming")
		if got := status(err); got != tc.status || (err == nil) != (tc.status == 0) {
			t.Fatalf("requireAdmin(role %q) = %v, want status %d", tc.role, err, tc.status)
		}
		if err != nil && !strings.Contains(err.Error(), "your role on alice/db is "+tc.role+": renaming needs OWNER or ADMIN") {
			t.Errorf("message %q", err.Error())
		}
	}
}
