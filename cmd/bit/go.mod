module github.com/bitkit-dev/bitkit/cmd/bit

go 1.26.0

replace github.com/bitkit-dev/bitkit => ../../

require (
	github.com/bitkit-dev/bitkit v0.0.0
	github.com/creack/pty v1.1.24
	golang.org/x/term v0.47.0
)

require (
	github.com/goccy/go-json v0.12.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
