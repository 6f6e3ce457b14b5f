package query

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgjson"
	"github.com/jackc/pgx/v5/pgtype"
)

// paramError is the 400 of a parameter that cannot be sent as its type.
func paramError(i int, typeName, format string, args ...any) *apierr.Error {
	return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_parameter", Field: "$" + strconv.Itoa(i+1),
		Message: fmt.Sprintf("parameter $%d: expected %s: %s", i+1, typeName, fmt.Sprintf(format, args...))}
}

// encodeParams turns the JSON params into text-format values for the
// parameter types PostgreSQL reported (nil = NULL).
func (h *Handler) encodeParams(t *dbaccess.Target, oids []uint32, params []jsonx.RawMessage) ([][]byte, error) {
	values := make([][]byte, len(params))
	for i, raw := range params {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		v, err := h.encodeValue(nil, t, oids[i], raw)
		if err != nil {
			return nil, paramError(i, h.typeName(t, oids[i]), "%v", err)
		}
		values[i] = v
	}
	return values, nil
}

func (h *Handler) typeName(t *dbaccess.Target, oid uint32) string {
	if typ, ok := h.lookupType(t, oid); ok {
		return typ.Name
	}
	return "type oid " + strconv.FormatUint(uint64(oid), 10)
}

// elemOID returns the element type of an array type known to pgx.
func (h *Handler) elemOID(oid uint32) (uint32, bool) {
	typ, ok := h.typeMap.TypeForOID(oid)
	if !ok {
		return 0, false
	}
	if ac, ok := typ.Codec.(*pgtype.ArrayCodec); ok && ac.ElementType != nil {
		return ac.ElementType.OID, true
	}
	return 0, false
}

// encodeValue appends the text form of one non-null JSON value for type oid.
func (h *Handler) encodeValue(dst []byte, t *dbaccess.Target, oid uint32, raw []byte) ([]byte, error) {
	switch oid {
	case pgjson.OIDJSON, pgjson.OIDJSONB:
		if raw[0] == '"' {
			// A JSON string is taken as the JSON document's text.
			var s string
			if err := jsonx.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			return append(dst, s...), nil
		}
		return append(dst, raw...), nil
	}
	if raw[0] == '[' {
		elem, isArray := h.elemOID(oid)
		if !isArray {
			if _, builtin := pgjson.Lookup(oid); builtin {
				return nil, errors.New("got a JSON array, which only array types take")
			}
			elem = 0 // unknown (e.g. an enum array): elements go as text
		}
		var items []jsonx.RawMessage
		if err := jsonx.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		return h.arrayLiteral(dst, t, elem, items)
	}
	if raw[0] == '{' {
		return nil, errors.New("got a JSON object, which only json and jsonb take")
	}
	return h.encodeScalar(dst, oid, raw)
}

func (h *Handler) arrayLiteral(dst []byte, t *dbaccess.Target, elem uint32, items []jsonx.RawMessage) ([]byte, error) {
	dst = append(dst, '{')
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		it = bytes.TrimSpace(it)
		switch {
		case len(it) == 0 || string(it) == "null":
			dst = append(dst, "NULL"...)
			continue
		case it[0] == '[' && elem != pgjson.OIDJSON && elem != pgjson.OIDJSONB:
			var sub []jsonx.RawMessage
			if err := jsonx.Unmarshal(it, &sub); err != nil {
				return nil, err
			}
			var err error
			if dst, err = h.arrayLiteral(dst, t, elem, sub); err != nil {
				return nil, err
			}
			continue
		}
		var v []byte
		var err error
		if elem == 0 {
			v, err = h.encodeScalar(nil, 0, it)
		} else {
			v, err = h.encodeValue(nil, t, elem, it)
		}
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		dst = append(dst, '"')
		for _, c := range v {
			if c == '"' || c == '\\' {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
		}
		dst = append(dst, '"')
	}
	return append(dst, '}'), nil
}

// encodeScalar appends the text form of a JSON string, number or boolean.
func (h *Handler) encodeScalar(dst []byte, oid uint32, raw []byte) ([]byte, error) {
	var text string
	kind := raw[0]
	switch {
	case kind == '"':
		if err := jsonx.Unmarshal(raw, &text); err != nil {
			return nil, err
		}
	case kind == 't' || kind == 'f':
		text = string(raw)
	case kind == '[' || kind == '{':
		return nil, errors.New("got a nested JSON array or object")
	default:
		text = string(raw) // a JSON number: its exact digits
	}
	switch oid {
	case pgjson.OIDInt2, pgjson.OIDInt4, pgjson.OIDInt8, pgjson.OIDOID:
		if kind == 't' || kind == 'f' {
			return nil, fmt.Errorf("got a boolean")
		}
		bits := map[uint32]int{pgjson.OIDInt2: 16, pgjson.OIDInt4: 32, pgjson.OIDInt8: 64, pgjson.OIDOID: 32}[oid]
		var err error
		if oid == pgjson.OIDOID {
			_, err = strconv.ParseUint(strings.TrimSpace(text), 10, bits)
		} else {
			_, err = strconv.ParseInt(strings.TrimSpace(text), 10, bits)
		}
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("%s is out of range", text)
			}
			return nil, fmt.Errorf("%s is not an integer", truncate(text))
		}
		return append(dst, text...), nil
	case pgjson.OIDFloat4, pgjson.OIDFloat8, pgjson.OIDNumeric:
		if kind == 't' || kind == 'f' {
			return nil, fmt.Errorf("got a boolean")
		}
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf":
			return append(dst, text...), nil
		}
		if _, err := strconv.ParseFloat(strings.TrimSpace(text), 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%s is not a number", truncate(text))
		}
		return append(dst, text...), nil
	case pgjson.OIDBool:
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "true", "t", "yes", "y", "on", "1":
			return append(dst, 't'), nil
		case "false", "f", "no", "n", "off", "0":
			return append(dst, 'f'), nil
		}
		return nil, fmt.Errorf("%s is not a boolean", truncate(text))
	case pgjson.OIDBytea:
		if kind != '"' {
			return nil, errors.New("bytea takes a base64 string")
		}
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, errors.New("bytea takes a standard base64 string (the form query results use)")
		}
		dst = append(dst, '\\', 'x')
		return hex.AppendEncode(dst, b), nil
	case pgjson.OIDUUID:
		var u pgtype.UUID
		if err := u.Scan(text); err != nil || kind != '"' {
			return nil, fmt.Errorf("%s is not a UUID", truncate(text))
		}
		return append(dst, text...), nil
	}
	// Text-like and every other type: PostgreSQL parses the text form.
	return append(dst, text...), nil
}

func truncate(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}
