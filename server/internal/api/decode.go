package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"unicode/utf8"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/httpcomp"
	"github.com/bitkit-dev/bitkit/server/internal/reqjson"
)

// DecodeJSON reads the request body (limited by the route) into v. Unknown
// fields are ignored. The body is read as JSON whatever its Content-Type
// says, including none (go-bitdotio sends JSON without one). It answers
// *apierr.Error values: 413 body_too_large (counted after decompression
// for a gzip-encoded body), 400 invalid_utf8, 400 invalid_json (with the
// byte offset) or 400 invalid_field (a value of the wrong type, naming the
// field). An empty body decodes as {} when allowEmpty.
func DecodeJSON(r *http.Request, v any, allowEmpty bool) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			after := ""
			if httpcomp.Decoded(r) {
				after = " after gzip decompression"
			}
			return apierr.New(http.StatusRequestEntityTooLarge, "body_too_large",
				"the request body is larger than %d bytes%s; send less data per request (use an import job for files)", mbe.Limit, after)
		}
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return ae
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return apierr.New(http.StatusRequestTimeout, "body_timeout",
				"the request body did not arrive within the server's read timeout (--http-read-timeout); send the whole body promptly")
		}
		return apierr.BadRequest("invalid_body", "could not read the request body: the connection ended early")
	}
	if len(b) == 0 || allSpace(b) {
		if allowEmpty {
			return nil
		}
		return apierr.BadRequest("invalid_json", "the request body is empty; send a JSON object")
	}
	if !utf8.Valid(b) {
		return apierr.BadRequest("invalid_utf8", "the request body is not valid UTF-8; encode text as UTF-8")
	}
	if err := jsonx.Unmarshal(b, v); err != nil {
		// Decode again with encoding/json for a precise, stable error.
		var probe any
		serr := json.Unmarshal(b, &probe)
		var se *json.SyntaxError
		if errors.As(serr, &se) {
			return apierr.BadRequest("invalid_json", "the request body is not valid JSON: %s at byte offset %d", se.Error(), se.Offset)
		}
		terr := json.Unmarshal(b, v)
		var te *json.UnmarshalTypeError
		if errors.As(terr, &te) && te.Type == boolType {
			e := apierr.BadRequest("invalid_field", "field %q must be true or false (a JSON boolean, or the string \"true\" or \"false\"), not %s", te.Field, te.Value)
			e.Field = te.Field
			return e
		}
		if errors.As(terr, &te) {
			e := apierr.BadRequest("invalid_field", "field %q must be a JSON %s, not %s", te.Field, goTypeToJSON(te.Type.Kind().String()), te.Value)
			e.Field = te.Field
			return e
		}
		if terr != nil {
			return apierr.BadRequest("invalid_json", "the request body does not match the expected shape: %s", terr.Error())
		}
		return apierr.BadRequest("invalid_json", "the request body is not valid JSON")
	}
	return nil
}

func goTypeToJSON(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "ptr":
		return "value of the expected type"
	}
	return "number"
}

func allSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// missing returns the 400 for a missing required field.
func missing(field string) error {
	e := apierr.BadRequest("missing_field", "the field %q is required", field)
	e.Field = field
	return e
}

// Bool is a boolean request field that accepts a JSON boolean or the
// strings "true" and "false" (see reqjson.Bool); DecodeJSON answers any
// other value as 400 invalid_field naming the field.
type Bool = reqjson.Bool

var boolType = reqjson.BoolType

// BoolPtr returns the value of an optional Bool field as a *bool.
func BoolPtr(b *Bool) *bool { return reqjson.Ptr(b) }
