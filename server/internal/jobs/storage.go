package jobs

import (
	"errors"
	"net/http"
	"syscall"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// storageFull reports whether err means the blob store ran out of space (or
// quota). Such a job fails at once with storage_full instead of being retried
// for minutes, and an upload that hits it answers 507, not a client error.
func storageFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

// storageFullError is the answer to an upload the blob store had no room for.
func storageFullError() error {
	return &apierr.Error{Status: http.StatusInsufficientStorage, Code: "storage_full",
		Message: "the server's file storage is full: nothing was imported; free space on the blob store (or ask the operator to), then retry"}
}

// storageFullJobError is the job error when the blob store fills up mid-job.
var storageFullJobError = &userError{Type: "storage_full",
	Message: "the server's file storage is full: the job stopped and left nothing behind; free space on the blob store, then run it again"}
