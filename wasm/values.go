//go:build js && wasm

package main

import (
	"bytes"
	"fmt"
	"strings"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// toJS converts a core struct (Database, Job, APIKey, Account, ...) to a JS
// object through its JSON form, renaming snake_case keys to camelCase. The
// contents of error_details and metadata keep their keys.
func toJS(v any) js.Value {
	b, err := jsonx.Marshal(v)
	if err != nil {
		return js.Null()
	}
	var tree any
	if err := jsonx.Unmarshal(b, &tree); err != nil {
		return js.Null()
	}
	return js.ValueOf(camelize(tree))
}

// keepKeys names the objects whose own keys are data, not field names.
var keepKeys = map[string]bool{"error_details": true, "metadata": true, "ErrorDetails": true, "Metadata": true}

func camelize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if keepKeys[k] {
				out[camel(k)] = x
				continue
			}
			out[camel(k)] = camelize(x)
		}
		return out
	case []any:
		for i := range t {
			t[i] = camelize(t[i])
		}
		return t
	}
	return v
}

// camel turns "storage_limit_bytes" into "storageLimitBytes" and a Go field
// name such as "StatusURL" into "statusUrl".
func camel(s string) string {
	if !strings.Contains(s, "_") && s != "" && s[0] >= 'A' && s[0] <= 'Z' {
		// Go field name without a json tag: lower the leading run of capitals.
		var b strings.Builder
		r := []rune(s)
		for i, c := range r {
			upperNext := i+1 < len(r) && r[i+1] >= 'A' && r[i+1] <= 'Z'
			if c >= 'A' && c <= 'Z' && (i == 0 || (r[i-1] >= 'A' && r[i-1] <= 'Z' && (upperNext || i+1 == len(r)))) {
				b.WriteRune(c + 'a' - 'A')
				continue
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// typeOf returns JavaScript's typeof v. (js.Value.Type panics on a BigInt,
// so every value that comes from a caller is classified this way.)
func typeOf(v js.Value) string { return jsTypeOf.Invoke(v).String() }

// is reports whether typeof v is t; "object" excludes null.
func is(v js.Value, t string) bool {
	if v.IsNull() || v.IsUndefined() {
		return t == "undefined" && v.IsUndefined()
	}
	return typeOf(v) == t
}

// fromJS converts a JS value (a query parameter) to a Go value that core
// sends as JSON: bigint → exact jsonx.Number, Date → RFC 3339 string, arrays
// and plain objects recursively.
func fromJS(v js.Value) (any, error) {
	switch typeOf(v) {
	case "undefined":
		return nil, nil
	case "boolean":
		return v.Bool(), nil
	case "number":
		return v.Float(), nil
	case "string":
		return v.String(), nil
	case "bigint":
		return jsonx.Number(js.Global().Get("String").Invoke(v).String()), nil
	case "object":
		if v.IsNull() {
			return nil, nil
		}
		if v.InstanceOf(js.Global().Get("Date")) {
			return v.Call("toISOString").String(), nil
		}
		if js.Global().Get("Array").Call("isArray", v).Bool() {
			out := make([]any, v.Length())
			for i := range out {
				x, err := fromJS(v.Index(i))
				if err != nil {
					return nil, err
				}
				out[i] = x
			}
			return out, nil
		}
		keys := js.Global().Get("Object").Call("keys", v)
		out := make(map[string]any, keys.Length())
		for i := 0; i < keys.Length(); i++ {
			k := keys.Index(i).String()
			x, err := fromJS(v.Get(k))
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	return nil, argErrorf("bitkit: a query parameter of JavaScript type %s cannot be sent: use null, boolean, number, bigint, string, Date, an array or a plain object", typeOf(v))
}

// params converts an optional JS array of parameters.
func params(v js.Value) ([]any, error) {
	if v.IsUndefined() || v.IsNull() {
		return nil, nil
	}
	if !js.Global().Get("Array").Call("isArray", v).Bool() {
		return nil, argErrorf("bitkit: params must be an array (for $1, $2, ...), got %s", typeOf(v))
	}
	p, err := fromJS(v)
	if err != nil {
		return nil, err
	}
	return p.([]any), nil
}

// colKind says how the values of one column are written for the decoder.
type colKind int

const (
	kindPlain  colKind = iota // JSON as is
	kindString                // numbers written as strings of their exact digits; the decoder makes them BigInt, keeps them, or makes them numbers where exact
)

// PostgreSQL type OIDs of the types whose JS form is an option.
const (
	oidInt8           = 20
	oidInt8Array      = 1016
	oidNumeric        = 1700
	oidNumericArray   = 1231
	oidDate           = 1082
	oidTimestamp      = 1114
	oidTimestamptz    = 1184
	oidDateArray      = 1182
	oidTimestampArray = 1115
	oidTimestamptzArr = 1185
)

// valueOptions are a client's value choices (createClient's int8, numeric,
// timestamps and types).
type valueOptions struct {
	int8, numeric string   // "bigint" | "string" | "number-if-safe"
	dates         bool     // timestamps: "date"
	types         js.Value // {oid or type name: parser}, or undefined
}

// js is the value options as the loader's decoder takes them
// ({int8, numeric, dates, types, objects}; rowSpec in bitkit.mjs applies
// them, the same code for query results and streams).
func (o valueOptions) js(objects bool) js.Value {
	return js.ValueOf(map[string]any{"int8": o.int8, "numeric": o.numeric, "dates": o.dates, "types": o.types, "objects": objects})
}

// columnKinds marks the int8 and numeric columns (and their arrays), whose
// numbers are written as strings of their exact digits for the decoder.
func columnKinds(cols []core.Column) []colKind {
	k := make([]colKind, len(cols))
	for i, c := range cols {
		switch c.TypeOID {
		case oidInt8, oidInt8Array, oidNumeric, oidNumericArray:
			k[i] = kindString
		}
	}
	return k
}

// appendValue writes one value as JSON; numbers of kindBigInt and kindString
// columns (also inside arrays) become JSON strings of their exact digits.
func appendValue(buf *bytes.Buffer, v any, k colKind) error {
	switch t := v.(type) {
	case jsonx.Number:
		if k != kindPlain {
			buf.WriteByte('"')
			buf.WriteString(string(t))
			buf.WriteByte('"')
			return nil
		}
		buf.WriteString(string(t))
		return nil
	case []any:
		buf.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := appendValue(buf, x, k); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	b, err := jsonx.Marshal(v)
	if err != nil {
		return fmt.Errorf("bitkit: encoding a result value: %w", err)
	}
	buf.Write(b)
	return nil
}

// appendRow writes one row as a JSON array.
func appendRow(buf *bytes.Buffer, row []any, k []colKind) error {
	buf.WriteByte('[')
	for i, v := range row {
		if i > 0 {
			buf.WriteByte(',')
		}
		kind := kindPlain
		if i < len(k) {
			kind = k[i]
		}
		if err := appendValue(buf, v, kind); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

// jsRows converts rows to a JS array in one pass: Go writes JSON, and the
// loader's decodeRows parses it, makes BigInts and, for "objects", builds
// the objects. This costs a few calls across the JS boundary per result
// instead of several per value, which keeps 100k-row results fast.
func jsRows(rows [][]any, cols []core.Column, jcols js.Value, vo valueOptions, objects bool) (js.Value, error) {
	k := columnKinds(cols)
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, r := range rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := appendRow(&buf, r, k); err != nil {
			return js.Null(), err
		}
	}
	buf.WriteByte(']')
	return decodeRows.Invoke(buf.String(), jcols, vo.js(objects)), nil
}

// jsColumns converts columns to [{name, type, typeOid}].
func jsColumns(cols []core.Column) js.Value {
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = map[string]any{"name": c.Name, "type": c.Type, "typeOid": int(c.TypeOID)}
	}
	return js.ValueOf(out)
}

// jsResult converts a core.Result.
func jsResult(r *core.Result, vo valueOptions, objects bool) (js.Value, error) {
	jcols := jsColumns(r.Columns)
	rows, err := jsRows(r.Rows, r.Columns, jcols, vo, objects)
	if err != nil {
		return js.Null(), err
	}
	meta := make(map[string]any, len(r.Metadata))
	for k, v := range r.Metadata {
		meta[k] = v
	}
	verb, _, _ := strings.Cut(r.Command, " ")
	return js.ValueOf(map[string]any{
		"query":    r.Query,
		"columns":  jcols,
		"metadata": meta,
		"rows":     rows,
		"rowCount": float64(r.RowCount),
		"command":  verb,
	}), nil
}
