// Package reqjson holds JSON value types for request bodies that accept the
// spellings the bit.io clients send, so that every route reads them alike.
package reqjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Bool is a boolean request field that accepts a JSON boolean or the
// strings "true" and "false" (any case; the Python bit.io CLI sends
// "is_private": "false"). null leaves it unchanged. Anything else fails
// with a *json.UnmarshalTypeError whose Type is BoolType, which encoding/json
// completes with the field's name.
type Bool bool

// BoolType is the reflect.Type of Bool, for recognising its errors.
var BoolType = reflect.TypeFor[Bool]()

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bool) UnmarshalJSON(data []byte) error {
	s := string(bytes.TrimSpace(data))
	if unq, ok := strings.CutPrefix(s, `"`); ok {
		if unq, ok = strings.CutSuffix(unq, `"`); ok {
			s = strings.ToLower(strings.TrimSpace(unq))
		}
	}
	switch s {
	case "null": // encoding/json's convention: null leaves the value alone
		return nil
	case "true":
		*b = true
		return nil
	case "false":
		*b = false
		return nil
	}
	what := "string " + string(data)
	if len(data) > 0 && data[0] != '"' {
		what = jsonKind(data)
	}
	return &json.UnmarshalTypeError{Value: what, Type: BoolType}
}

// jsonKind names the kind of a JSON value that is not a string.
func jsonKind(data []byte) string {
	switch data[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	}
	return fmt.Sprintf("number %s", data)
}

// Ptr returns the value of an optional Bool field as a *bool.
func Ptr(b *Bool) *bool {
	if b == nil {
		return nil
	}
	v := bool(*b)
	return &v
}

// BadBool decodes body into v (a fresh value of the request's type) with
// encoding/json and reports the field and value of a Bool field that holds
// neither a boolean nor "true"/"false", for a precise 400 after a faster
// decoder failed.
func BadBool(body []byte, v any) (field, value string, ok bool) {
	var te *json.UnmarshalTypeError
	if err := json.Unmarshal(body, v); err != nil && errors.As(err, &te) && te.Type == BoolType {
		return te.Field, te.Value, true
	}
	return "", "", false
}
