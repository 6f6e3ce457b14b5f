module github.com/bitkit-dev/bitkit/workers

go 1.26

replace github.com/bitkit-dev/bitkit => ../

require (
	github.com/bitkit-dev/bitkit v0.0.0-00010101000000-000000000000
	github.com/syumai/workers v0.33.0
)

require github.com/goccy/go-json v0.12.0 // indirect

tool github.com/syumai/workers/cmd/workers-assets-gen
