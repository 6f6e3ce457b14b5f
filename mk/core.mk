# core: the Go HTTP API client (github.com/bitkit-dev/bitkit/core).
# test-core-wasm runs core's unit tests under GOOS=js GOARCH=wasm with Node
# (go_js_wasm_exec from the Go distribution); tests that exec processes, use
# the file system heavily or need bitd are built only natively (//go:build !js).

TEST_TARGETS += test-core-wasm

.PHONY: test-core-wasm fuzz-core

## test-core-wasm: core's unit tests under js/wasm in Node
test-core-wasm:
	PATH="$$($(GO) env GOROOT)/lib/wasm:$$PATH" GOOS=js GOARCH=wasm $(GO) test -count=1 ./core/...

## fuzz-core: a short fuzzing run of core's NDJSON stream decoder
fuzz-core:
	$(GO) test -run '^$$' -fuzz FuzzStreamDecoder -fuzztime 30s ./core/
