package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// describeError renders err for stderr: the server's message first, then its
// code, HTTP status, SQLSTATE, detail, hint and request ID on their own lines.
// It never includes credentials: core's errors carry none, and the CLI's own
// errors never quote a key, token or password.
func describeError(err error) string {
	var b strings.Builder
	var apiErr *core.APIError
	var jobErr *core.JobFailedError
	switch {
	case errors.As(err, &jobErr) && jobErr.Job != nil:
		j := jobErr.Job
		fmt.Fprintf(&b, "bit: error: job %s failed", j.ID)
		if j.ErrorType != "" {
			fmt.Fprintf(&b, ": %s", j.ErrorType)
		}
		b.WriteByte('\n')
		if len(j.ErrorDetails) > 0 {
			if d, err := jsonx.Marshal(j.ErrorDetails); err == nil {
				fmt.Fprintf(&b, "  details: %s\n", d)
			}
		}
		if j.ErrorID != "" {
			fmt.Fprintf(&b, "  error id: %s\n", j.ErrorID)
		}
	case errors.As(err, &apiErr):
		msg := apiErr.Message
		if msg == "" {
			msg = err.Error()
		}
		fmt.Fprintf(&b, "bit: error: %s\n", msg)
		status := fmt.Sprintf("  status: %d", apiErr.StatusCode)
		if apiErr.Code != "" {
			status += fmt.Sprintf(" (code %s)", apiErr.Code)
		}
		b.WriteString(status + "\n")
		if apiErr.SQLState != "" {
			fmt.Fprintf(&b, "  sqlstate: %s\n", apiErr.SQLState)
		}
		if apiErr.Index != nil {
			fmt.Fprintf(&b, "  statement: %d\n", *apiErr.Index)
		}
		if apiErr.Position > 0 {
			fmt.Fprintf(&b, "  position: %d\n", apiErr.Position)
		}
		if apiErr.Detail != "" {
			fmt.Fprintf(&b, "  detail: %s\n", apiErr.Detail)
		}
		if apiErr.Hint != "" {
			fmt.Fprintf(&b, "  hint: %s\n", apiErr.Hint)
		}
		if errors.Is(err, core.ErrTooLarge) {
			b.WriteString("  with bit: stream the rows with --format ndjson or --format csv, or run `bit export`\n")
		}
		if apiErr.RequestID != "" {
			fmt.Fprintf(&b, "  request id: %s\n", apiErr.RequestID)
		}
	default:
		fmt.Fprintf(&b, "bit: error: %s\n", err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			b.WriteString("  hint: is bitd running there? Start one with `make demo` (or `bitd dev`), or point --endpoint / $BITKIT_ENDPOINT at your server\n")
		}
	}
	return b.String()
}
