// Package pgjson converts PostgreSQL values in their TEXT output format into
// JSON, appending to a byte slice. It is the one conversion path of bitd's
// query answers (buffered and streamed alike), written for speed: a column's
// Encoder is chosen once per result from its type OID, then every value is a
// plain function call that appends bytes, without reflection or allocation in
// the common cases.
//
// Encodings (see docs/query.md):
//
//	smallint, integer, bigint, oid, numeric, real, double precision
//	                      exact JSON numbers (the digits PostgreSQL printed);
//	                      NaN, Infinity, -Infinity as JSON strings
//	boolean               true / false
//	bytea                 standard base64 string (hex and escape output both read)
//	date                  "2006-01-02" (infinity and BC dates: their text)
//	timestamp with tz     RFC 3339 with offset, microseconds kept
//	timestamp             RFC 3339 without offset
//	json, jsonb           nested JSON (compacted when it spans lines)
//	arrays                JSON arrays (any number of dimensions, NULL → null)
//	everything else       the PostgreSQL text form as a JSON string
//
// The encoders expect the session settings bitd's pools start with
// (DateStyle ISO, IntervalStyle postgres); a value whose text does not have the
// expected shape is written as its text, never dropped or mangled.
package pgjson

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Encoder appends the JSON form of one non-NULL value, given in PostgreSQL
// text format, to dst and returns the extended slice.
type Encoder func(dst, src []byte) []byte

// Type describes how a PostgreSQL type is named and encoded.
type Type struct {
	OID  uint32
	Name string  // human PostgreSQL name, e.g. "bigint", "integer[]"
	Enc  Encoder // never nil
}

// Well-known type OIDs.
const (
	OIDBool        = 16
	OIDBytea       = 17
	OIDChar        = 18
	OIDName        = 19
	OIDInt8        = 20
	OIDInt2        = 21
	OIDInt4        = 23
	OIDText        = 25
	OIDOID         = 26
	OIDJSON        = 114
	OIDFloat4      = 700
	OIDFloat8      = 701
	OIDBox         = 603
	OIDBPChar      = 1042
	OIDVarchar     = 1043
	OIDDate        = 1082
	OIDTime        = 1083
	OIDTimestamp   = 1114
	OIDTimestamptz = 1184
	OIDInterval    = 1186
	OIDTimetz      = 1266
	OIDNumeric     = 1700
	OIDUUID        = 2950
	OIDJSONB       = 3802
)

type base struct {
	oid, arrayOID uint32
	name          string
	enc           Encoder
}

var builtins = []base{
	{16, 1000, "boolean", Bool},
	{17, 1001, "bytea", Bytea},
	{18, 1002, `"char"`, String},
	{19, 1003, "name", String},
	{20, 1016, "bigint", Number},
	{21, 1005, "smallint", Number},
	{22, 1006, "int2vector", String},
	{23, 1007, "integer", Number},
	{24, 1008, "regproc", String},
	{25, 1009, "text", String},
	{26, 1028, "oid", Number},
	{27, 1010, "tid", String},
	{28, 1011, "xid", String},
	{29, 1012, "cid", String},
	{30, 1013, "oidvector", String},
	{114, 199, "json", JSON},
	{142, 143, "xml", String},
	{194, 0, "pg_node_tree", String},
	{600, 1017, "point", String},
	{601, 1018, "lseg", String},
	{602, 1019, "path", String},
	{603, 1020, "box", String},
	{604, 1027, "polygon", String},
	{628, 629, "line", String},
	{650, 651, "cidr", String},
	{700, 1021, "real", Float},
	{701, 1022, "double precision", Float},
	{705, 0, "unknown", String},
	{718, 719, "circle", String},
	{774, 775, "macaddr8", String},
	{790, 791, "money", String},
	{829, 1040, "macaddr", String},
	{869, 1041, "inet", String},
	{1033, 1034, "aclitem", String},
	{1042, 1014, "character", String},
	{1043, 1015, "character varying", String},
	{1082, 1182, "date", String},
	{1083, 1183, "time without time zone", String},
	{1114, 1115, "timestamp without time zone", Timestamp},
	{1184, 1185, "timestamp with time zone", Timestamptz},
	{1186, 1187, "interval", String},
	{1266, 1270, "time with time zone", String},
	{1560, 1561, "bit", String},
	{1562, 1563, "bit varying", String},
	{1700, 1231, "numeric", Numeric},
	{1790, 2201, "refcursor", String},
	{2202, 2207, "regprocedure", String},
	{2203, 2208, "regoper", String},
	{2204, 2209, "regoperator", String},
	{2205, 2210, "regclass", String},
	{2206, 2211, "regtype", String},
	{2249, 2287, "record", String},
	{2275, 1263, "cstring", String},
	{2278, 0, "void", String},
	{2950, 2951, "uuid", String},
	{2970, 2949, "txid_snapshot", String},
	{3220, 3221, "pg_lsn", String},
	{3614, 3643, "tsvector", String},
	{3615, 3645, "tsquery", String},
	{3734, 3735, "regconfig", String},
	{3769, 3770, "regdictionary", String},
	{3802, 3807, "jsonb", JSON},
	{3904, 3905, "int4range", String},
	{3906, 3907, "numrange", String},
	{3908, 3909, "tsrange", String},
	{3910, 3911, "tstzrange", String},
	{3912, 3913, "daterange", String},
	{3926, 3927, "int8range", String},
	{4072, 4073, "jsonpath", String},
	{4089, 4090, "regnamespace", String},
	{4096, 4097, "regrole", String},
	{4191, 4192, "regcollation", String},
	{4451, 6150, "int4multirange", String},
	{4532, 6151, "nummultirange", String},
	{4533, 6152, "tsmultirange", String},
	{4534, 6153, "tstzmultirange", String},
	{4535, 6155, "datemultirange", String},
	{4536, 6157, "int8multirange", String},
	{5038, 5039, "pg_snapshot", String},
	{5069, 271, "xid8", String},
}

var known = func() map[uint32]Type {
	m := make(map[uint32]Type, 2*len(builtins))
	for _, b := range builtins {
		m[b.oid] = Type{OID: b.oid, Name: b.name, Enc: b.enc}
		if b.arrayOID != 0 {
			delim := byte(',')
			if b.oid == OIDBox {
				delim = ';'
			}
			m[b.arrayOID] = Type{OID: b.arrayOID, Name: b.name + "[]", Enc: ArrayOf(b.enc, delim)}
		}
	}
	return m
}()

// Lookup returns the built-in type with the given OID.
func Lookup(oid uint32) (Type, bool) {
	t, ok := known[oid]
	return t, ok
}

// String writes the text as a JSON string.
func String(dst, src []byte) []byte { return AppendString(dst, src) }

// Bool writes t/f as true/false.
func Bool(dst, src []byte) []byte {
	switch {
	case len(src) == 1 && src[0] == 't':
		return append(dst, "true"...)
	case len(src) == 1 && src[0] == 'f':
		return append(dst, "false"...)
	}
	return AppendString(dst, src)
}

// Number writes an integer's digits as a JSON number.
func Number(dst, src []byte) []byte {
	if !isJSONNumber(src) {
		return AppendString(dst, src)
	}
	return append(dst, src...)
}

// Float writes a float's shortest exact digits as a JSON number; NaN,
// Infinity and -Infinity become JSON strings.
func Float(dst, src []byte) []byte { return Number(dst, src) }

// Numeric writes a numeric's digits as a JSON number; NaN, Infinity and
// -Infinity become JSON strings.
func Numeric(dst, src []byte) []byte { return Number(dst, src) }

// isJSONNumber reports whether b matches the JSON number grammar.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

// Bytea writes the bytes as a standard base64 JSON string. It reads both the
// hex (\x…) and the escape output formats. Hex input is decoded in chunks
// of a multiple of 3 bytes, so base64 of the chunks is base64 of the whole
// and no buffer proportional to the value is allocated.
func Bytea(dst, src []byte) []byte {
	if len(src) < 2 || src[0] != '\\' || src[1] != 'x' {
		raw, ok := unescapeBytea(src)
		if !ok {
			return AppendString(dst, src)
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		return append(dst, '"')
	}
	h := src[2:]
	if len(h)%2 != 0 {
		return AppendString(dst, src)
	}
	start := len(dst)
	dst = append(dst, '"')
	var chunk [768]byte
	for len(h) > 0 {
		n := min(len(h), 2*len(chunk))
		if _, err := hex.Decode(chunk[:n/2], h[:n]); err != nil {
			return AppendString(dst[:start], src)
		}
		dst = base64.StdEncoding.AppendEncode(dst, chunk[:n/2])
		h = h[n:]
	}
	return append(dst, '"')
}

func unescapeBytea(src []byte) ([]byte, bool) {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 < len(src) && src[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+3 >= len(src) {
			return nil, false
		}
		v, err := strconv.ParseUint(string(src[i+1:i+4]), 8, 8)
		if err != nil {
			return nil, false
		}
		out = append(out, byte(v))
		i += 3
	}
	return out, true
}

// Timestamp writes "2006-01-02 15:04:05.999999" as RFC 3339 without offset
// ("2006-01-02T15:04:05.999999").
func Timestamp(dst, src []byte) []byte {
	if !isoDateTime(src, ".") {
		return AppendString(dst, src)
	}
	dst = append(dst, '"')
	dst = append(dst, src[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, src[11:]...)
	return append(dst, '"')
}

// Timestamptz writes "2006-01-02 15:04:05.999999+02" as RFC 3339 with the
// offset PostgreSQL printed ("2006-01-02T15:04:05.999999+02:00"). Offsets
// with seconds (historical local mean time) are converted to UTC.
func Timestamptz(dst, src []byte) []byte {
	if !isoDateTime(src, ".:+-") {
		return AppendString(dst, src)
	}
	// The offset starts at the last '+' or '-' after the time of day.
	off := -1
	for i := len(src) - 1; i >= 19; i-- {
		if src[i] == '+' || src[i] == '-' {
			off = i
			break
		}
	}
	if off < 0 {
		return AppendString(dst, src)
	}
	o := src[off:]
	switch len(o) {
	case 3: // +HH
		dst = append(dst, '"')
		dst = append(dst, src[:10]...)
		dst = append(dst, 'T')
		dst = append(dst, src[11:]...)
		dst = append(dst, ":00"...)
		return append(dst, '"')
	case 6: // +HH:MM
		dst = append(dst, '"')
		dst = append(dst, src[:10]...)
		dst = append(dst, 'T')
		dst = append(dst, src[11:]...)
		return append(dst, '"')
	case 9: // +HH:MM:SS: not representable in RFC 3339, so convert to UTC.
		t, err := time.Parse("2006-01-02 15:04:05.999999-07:00:00", string(src))
		if err != nil {
			return AppendString(dst, src)
		}
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.999999Z07:00")
		return append(dst, '"')
	}
	return AppendString(dst, src)
}

// isoDateTime reports whether src is "YYYY-MM-DD HH:MM:SS" followed only by
// bytes of tail (fractional seconds, an offset), so the fast paths copy
// nothing that would need escaping in a JSON string. Anything else (BC dates,
// years past 9999, infinity, other DateStyles) is left to the caller's
// quoted-string fallback.
func isoDateTime(src []byte, tail string) bool {
	if len(src) < 19 || src[4] != '-' || src[7] != '-' || src[10] != ' ' || src[13] != ':' || src[16] != ':' {
		return false
	}
	for i, c := range src[:19] {
		switch i {
		case 4, 7, 10, 13, 16:
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range src[19:] {
		if (c < '0' || c > '9') && strings.IndexByte(tail, c) < 0 {
			return false
		}
	}
	return true
}

// JSON writes json/jsonb text as nested JSON. jsonb output is one line;
// json keeps its input text, so a value spanning lines is compacted (JSON
// strings cannot hold raw newlines, so this only removes whitespace).
func JSON(dst, src []byte) []byte {
	if bytes.IndexByte(src, '\n') < 0 && bytes.IndexByte(src, '\r') < 0 {
		return append(dst, src...)
	}
	inStr := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inStr {
			dst = append(dst, c)
			if c == '\\' && i+1 < len(src) {
				i++
				dst = append(dst, src[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		}
		dst = append(dst, c)
	}
	return dst
}

// ArrayOf returns the Encoder of an array whose elements are encoded by
// elem; delim is the element delimiter (',' for every type but box).
// Multi-dimensional arrays become nested JSON arrays; NULL elements null.
func ArrayOf(elem Encoder, delim byte) Encoder {
	return func(dst, src []byte) []byte {
		start := len(dst)
		p := src
		// Arrays whose lower bound is not 1 start with "[l:u]…=".
		if len(p) > 0 && p[0] == '[' {
			eq := bytes.IndexByte(p, '=')
			if eq < 0 {
				return AppendString(dst, src)
			}
			p = p[eq+1:]
		}
		out, rest, ok := appendArray(dst, p, elem, delim)
		if !ok || len(rest) != 0 {
			return AppendString(dst[:start], src)
		}
		return out
	}
}

func appendArray(dst, p []byte, elem Encoder, delim byte) ([]byte, []byte, bool) {
	if len(p) == 0 || p[0] != '{' {
		return dst, p, false
	}
	p = p[1:]
	dst = append(dst, '[')
	if len(p) > 0 && p[0] == '}' {
		return append(dst, ']'), p[1:], true
	}
	var scratch []byte
	for {
		if len(p) == 0 {
			return dst, p, false
		}
		var ok bool
		switch p[0] {
		case '{':
			dst, p, ok = appendArray(dst, p, elem, delim)
			if !ok {
				return dst, p, false
			}
		case '"':
			i := 1
			esc := false
			for ; i < len(p); i++ {
				if p[i] == '\\' {
					esc = true
					i++
					continue
				}
				if p[i] == '"' {
					break
				}
			}
			if i >= len(p) {
				return dst, p, false
			}
			v := p[1:i]
			if esc {
				scratch = scratch[:0]
				for j := 0; j < len(v); j++ {
					if v[j] == '\\' && j+1 < len(v) {
						j++
					}
					scratch = append(scratch, v[j])
				}
				v = scratch
			}
			dst = elem(dst, v)
			p = p[i+1:]
		default:
			i := 0
			for i < len(p) && p[i] != delim && p[i] != '}' {
				i++
			}
			v := p[:i]
			if len(v) == 4 && (v[0]|0x20) == 'n' && (v[1]|0x20) == 'u' && (v[2]|0x20) == 'l' && (v[3]|0x20) == 'l' {
				dst = append(dst, "null"...)
			} else {
				dst = elem(dst, v)
			}
			p = p[i:]
		}
		if len(p) == 0 {
			return dst, p, false
		}
		if p[0] == '}' {
			return append(dst, ']'), p[1:], true
		}
		if p[0] != delim {
			return dst, p, false
		}
		dst = append(dst, ',')
		p = p[1:]
	}
}

const hexDigits = "0123456789abcdef"

// safe[c] is true for ASCII bytes that need no escaping in a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendStringString is AppendString for a Go string.
func AppendStringString(dst []byte, s string) []byte {
	return AppendString(dst, []byte(s))
}
