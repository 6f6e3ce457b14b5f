module github.com/bitkit-dev/bitkit/workers

go 1.26

replace github.com/bitkit-dev/bitkit => ../

require github.com/syumai/workers v0.33.0 // indirect

tool github.com/syumai/workers/cmd/workers-assets-gen
