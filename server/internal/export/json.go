package export

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"io"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/jackc/pgx/v5/pgconn"
)

// jsonSink writes a JSON array of objects, one object per line. Numbers
// (int2/4/8, numeric, float) are exact JSON numbers copied from PostgreSQL's
// text (NaN and ±Infinity become strings); booleans are booleans; json and
// jsonb are nested JSON; bytea is base64; timestamps are RFC 3339; anything
// else is a string.
type jsonSink struct {
	w     *bufio.Writer
	keys  [][]byte
	oids  []uint32
	first bool
	buf   []byte
}

func newJSONSink(w io.Writer, fields []pgconn.FieldDescription) *jsonSink {
	s := &jsonSink{w: bufio.NewWriterSize(w, 256<<10), first: true}
	for i, n := range names(fields) {
		k, _ := jsonx.Marshal(n)
		s.keys = append(s.keys, k)
		s.oids = append(s.oids, fields[i].DataTypeOID)
	}
	s.w.WriteString("[")
	return s
}

func (s *jsonSink) Row(vals [][]byte, _ int64) error {
	b := s.buf[:0]
	if !s.first {
		b = append(b, ',')
	}
	s.first = false
	b = append(b, "\n{"...)
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.keys[i]...)
		b = append(b, ':')
		b = appendJSONValue(b, s.oids[i], v)
	}
	b = append(b, '}')
	s.buf = b
	_, err := s.w.Write(b)
	return err
}

func appendJSONValue(b []byte, oid uint32, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	switch oid {
	case oidInt2, oidInt4, oidInt8, oidNumeric, oidFloat4, oidFloat8:
		if isNumber(v) {
			return append(b, v...)
		}
	case oidBool:
		if len(v) == 1 && v[0] == 't' {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case oidJSON, oidJSONB:
		return append(b, v...)
	case oidBytea:
		raw := v
		if len(v) >= 2 && v[0] == '\\' && v[1] == 'x' {
			if d, err := hex.DecodeString(string(v[2:])); err == nil {
				raw = d
			}
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, raw)
		return append(b, '"')
	case oidTimestamp, oidTimestamptz:
		v = []byte(rfc3339(string(v), oid == oidTimestamptz))
	}
	q, _ := jsonx.Marshal(string(v))
	return append(b, q...)
}

func (s *jsonSink) Close() error {
	if s.first {
		s.w.WriteString("]\n")
	} else {
		s.w.WriteString("\n]\n")
	}
	return s.w.Flush()
}

// isNumber reports whether PostgreSQL's text of a number is a JSON number
// (everything but NaN and ±Infinity).
func isNumber(v []byte) bool {
	if len(v) > 0 && v[0] == '-' {
		v = v[1:]
	}
	return len(v) > 0 && v[0] >= '0' && v[0] <= '9'
}
