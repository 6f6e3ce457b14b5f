//go:build js && wasm

// Command wasm is the bitkit browser client: the operations of package core
// compiled to WebAssembly and exported to JavaScript as one namespace,
// globalThis.bitkit, whose methods return Promises.
//
// Build it with
//
//	GOOS=js GOARCH=wasm go build -trimpath -gcflags=github.com/bitkit-dev/bitkit/...=-l -ldflags="-s -w" -o bitkit.wasm ./wasm
//
// (inlining off for bitkit's own packages: a smaller module, see mk/web.mk)
//
// and load it through bitkit.mjs (the ES-module loader, which also supplies
// the BitkitError class and the row decoder: query streams are decoded in
// JavaScript, see ops.go's queryStream); bitkit.d.ts holds the
// TypeScript declarations and the value mapping. `make wasm` does the build,
// `make web` also copies the dashboard; docs/web.md describes the API.
// Interactive transactions: tx.go has beginTx, commitTx and rollbackTx, and
// bitkit.mjs builds client.transaction on them; kysely.mjs (a Kysely
// dialect) and drizzle.mjs (Drizzle's pg-proxy with transactions) are ES
// modules on top, shipped beside bitkit.mjs.
//
// Every exported function returns at once: blocking work (net/http over the
// browser's fetch) runs in a goroutine, and the Promise settles when it is
// done. Blocking inside a js.FuncOf callback would deadlock the program.
package main
