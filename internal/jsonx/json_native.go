//go:build !js

package jsonx

import (
	"io"

	gojson "github.com/goccy/go-json"
)

// Impl names the implementation compiled in: "goccy" or "encoding/json".
const Impl = "goccy"

// Marshal encodes v as JSON.
func Marshal(v any) ([]byte, error) { return gojson.Marshal(v) }

// Unmarshal decodes JSON data into v.
func Unmarshal(data []byte, v any) error { return gojson.Unmarshal(data, v) }

// Valid reports whether data is valid JSON.
func Valid(data []byte) bool { return gojson.Valid(data) }

// Decoder reads JSON values from a stream.
type Decoder = gojson.Decoder

// Encoder writes JSON values to a stream.
type Encoder = gojson.Encoder

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder { return gojson.NewDecoder(r) }

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return gojson.NewEncoder(w) }
