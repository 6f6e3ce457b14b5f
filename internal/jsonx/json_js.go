//go:build js

package jsonx

import (
	"encoding/json"
	"io"
)

// Impl names the implementation compiled in: "goccy" or "encoding/json".
const Impl = "encoding/json"

// Marshal encodes v as JSON.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Valid reports whether data is valid JSON.
func Valid(data []byte) bool { return json.Valid(data) }

// Decoder reads JSON values from a stream.
type Decoder = json.Decoder

// Encoder writes JSON values to a stream.
type Encoder = json.Encoder

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder { return json.NewDecoder(r) }

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return json.NewEncoder(w) }
