// Package jsonx hides which JSON implementation bitkit uses.
//
// Native builds use github.com/goccy/go-json, which is markedly faster at
// encoding and decoding large query results. Under GOOS=js (browser wasm and
// Cloudflare Workers) the standard library's encoding/json is selected by a
// build tag instead: goccy adds about 0.9 MB gzipped to a wasm module and
// doubles a Worker's per-request start (see shared/RUNTIMES.md).
//
// Both variants expose the same functions with encoding/json semantics.
// RawMessage and Number are the encoding/json types in both builds (goccy
// aliases them), so values cross the boundary freely.
package jsonx

import "encoding/json"

// RawMessage is a raw encoded JSON value (encoding/json.RawMessage).
type RawMessage = json.RawMessage

// Number is a JSON number literal kept as text (encoding/json.Number).
type Number = json.Number

// Marshaler is implemented by types that encode themselves.
type Marshaler = json.Marshaler

// Unmarshaler is implemented by types that decode themselves.
type Unmarshaler = json.Unmarshaler
