//go:build js && wasm

package main

import (
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/jsfetch"
)

// Provided by bitkit.mjs through globalThis.__bitkitInit.
var (
	errorClass js.Value // class BitkitError
	decodeRows js.Value // (jsonText, spec) → rows
	jsTypeOf   js.Value // (v) → typeof v
	pumpStream js.Value // (reader | Uint8Array, sink, options) → Promise of {ok} | {error} | {readError} | {stopped}
)

func main() {
	boot := js.Global().Get("__bitkitInit")
	if boot.Type() != js.TypeObject || boot.Get("decodeRows").Type() != js.TypeFunction || boot.Get("typeOf").Type() != js.TypeFunction || boot.Get("pumpStream").Type() != js.TypeFunction {
		js.Global().Get("console").Call("error", "bitkit: load bitkit.wasm through bitkit.mjs (load()), which supplies BitkitError and the row decoder")
		return
	}
	errorClass = boot.Get("BitkitError")
	decodeRows = boot.Get("decodeRows")
	jsTypeOf = boot.Get("typeOf")
	pumpStream = boot.Get("pumpStream")
	// fetch (jsfetch) carries everything but import uploads, which
	// go through XMLHttpRequest (upload.go); no net/http is linked.
	core.DefaultFetcher = uploadFetcher{next: jsfetch.Fetcher{}}

	ns := js.Global().Get("Object").New()
	ns.Set("version", core.Version)
	ns.Set("BitkitError", errorClass)
	ns.Set("_createClient", js.FuncOf(createClient)) // wrapped as createClient by bitkit.mjs
	js.Global().Set("bitkit", ns)
	if ready := boot.Get("onReady"); ready.Type() == js.TypeFunction {
		ready.Invoke(ns)
	}
	select {} // keep the exported functions alive
}
