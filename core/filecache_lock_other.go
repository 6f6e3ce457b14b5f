//go:build !js && !unix

package core

import (
	"context"
	"errors"
)

// lockFile has no cross-process lock on this platform: the file cache
// falls back to an in-process lock.
func lockFile(context.Context, string) (func(), error) {
	return nil, errors.New("no file locks on this platform")
}
