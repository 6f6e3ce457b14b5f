//go:build !js

package bitsql

import "github.com/bitkit-dev/bitkit/core"

// platformOptions are the core options of the build: none natively.
func platformOptions() []core.Option { return nil }
