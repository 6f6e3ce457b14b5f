package query

import (
	"bytes"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
)

// FuzzEncodeParam feeds arbitrary JSON parameters (untrusted client input)
// to the parameter encoder for every common type: it must never panic, and
// a value it accepts for an array type must be a brace-delimited literal.
func FuzzEncodeParam(f *testing.F) {
	for _, s := range []string{`1`, `"x"`, `[1,[2,null]]`, `{"a":[1]}`, `true`, `"\u0000"`, `[["a\"b"]]`, `-1e999`, `"AP8Q"`} {
		f.Add(s)
	}
	h := New(Config{}, nil, nil)
	t := &dbaccess.Target{PGDatabase: "fuzz"}
	oids := []uint32{16, 17, 20, 21, 23, 25, 26, 114, 700, 701, 1007, 1009, 1700, 2950, 3802, 3807, 1082, 1184, 99999}
	f.Fuzz(func(tt *testing.T, s string) {
		raw := bytes.TrimSpace([]byte(s))
		if len(raw) == 0 || !jsonx.Valid(raw) || string(raw) == "null" {
			return
		}
		for _, oid := range oids {
			v, err := h.encodeValue(nil, t, oid, raw)
			if err == nil && (oid == 1007 || oid == 1009) && raw[0] == '[' && (len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}') {
				tt.Fatalf("oid %d: %s → %q", oid, raw, v)
			}
		}
	})
}
