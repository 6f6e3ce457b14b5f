package pgjson_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/pgjson"
)

func enc(t *testing.T, oid uint32) pgjson.Encoder {
	t.Helper()
	typ, ok := pgjson.Lookup(oid)
	if !ok {
		t.Fatalf("oid %d not built in", oid)
	}
	return typ.Enc
}

func TestEncoders(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		oid  uint32
		in   string
		want string
	}{
		{"int8", pgjson.OIDInt8, "-9223372036854775808", "-9223372036854775808"},
		{"numeric", pgjson.OIDNumeric, "0.000000000000000000000000000000000000001", "0.000000000000000000000000000000000000001"},
		{"numeric nan", pgjson.OIDNumeric, "NaN", `"NaN"`},
		{"float exp", pgjson.OIDFloat8, "1.5e-07", "1.5e-07"},
		{"float inf", pgjson.OIDFloat4, "Infinity", `"Infinity"`},
		{"bool", pgjson.OIDBool, "t", "true"},
		{"text", pgjson.OIDText, "a\x00b\"\\\u2028\xff", `"a\u0000b\"\\` + "\u2028" + `\ufffd"`},
		{"bytea hex", pgjson.OIDBytea, `\x68656c6c6f`, `"aGVsbG8="`},
		{"bytea escape", pgjson.OIDBytea, `a\\b\001`, `"YVxiAQ=="`},
		{"bytea malformed", pgjson.OIDBytea, `\x6`, `"\\x6"`},
		{"timestamptz", pgjson.OIDTimestamptz, "2024-01-02 03:04:05+05:30", `"2024-01-02T03:04:05+05:30"`},
		{"timestamptz hour", pgjson.OIDTimestamptz, "2024-01-02 03:04:05.000001-08", `"2024-01-02T03:04:05.000001-08:00"`},
		{"timestamptz seconds offset", pgjson.OIDTimestamptz, "1900-01-01 00:19:32+00:19:32", `"1900-01-01T00:00:00Z"`},
		{"timestamptz infinity", pgjson.OIDTimestamptz, "infinity", `"infinity"`},
		{"timestamptz non-ISO", pgjson.OIDTimestamptz, "Tue Jan 02 03:04:05 2024 UTC", `"Tue Jan 02 03:04:05 2024 UTC"`},
		{"timestamp", pgjson.OIDTimestamp, "2024-01-02 03:04:05", `"2024-01-02T03:04:05"`},
		{"timestamp fraction", pgjson.OIDTimestamp, "2024-01-02 03:04:05.5", `"2024-01-02T03:04:05.5"`},
		{"timestamp quote in tail", pgjson.OIDTimestamp, "0000-00-00 00:00:0\"", `"0000-00-00 00:00:0\""`},
		{"timestamp BC", pgjson.OIDTimestamp, "0044-03-15 12:00:00 BC", `"0044-03-15 12:00:00 BC"`},
		{"timestamp year 10000", pgjson.OIDTimestamp, "10000-01-01 00:00:00", `"10000-01-01 00:00:00"`},
		{"timestamp non-digit", pgjson.OIDTimestamp, "2024-01-0\\ 03:04:05", `"2024-01-0\\ 03:04:05"`},
		{"timestamptz control in tail", pgjson.OIDTimestamptz, "2024-01-02 03:04:05+01\n", `"2024-01-02 03:04:05+01\n"`},
		{"json spaces", pgjson.OIDJSON, "{\n \"a b\" : \"c\\\" d\"\r\n}", `{"a b":"c\" d"}`},
		{"array nested", 1007, "{{1,NULL},{3,4}}", "[[1,null],[3,4]]"},
		{"array quoted", 1009, `{"a,b","c\\\"d",null,"NULL"}`, `["a,b","c\\\"d",null,"NULL"]`},
		{"array malformed", 1007, "{1,2", `"{1,2"`},
		{"array trailing", 1007, "{1}x", `"{1}x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := string(enc(t, c.oid)(nil, []byte(c.in)))
			if got != c.want {
				t.Errorf("%q → %s, want %s", c.in, got, c.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("%s is not valid JSON", got)
			}
		})
	}
}

// FuzzEncoders checks that every encoder writes valid JSON for any input.
func FuzzEncoders(f *testing.F) {
	for _, s := range []string{"{1,2}", `{"a\"",NULL}`, `\x00`, "2024-01-02 03:04:05+01", "{\n}", "1e5", "[1:2]={1,2}", "t"} {
		f.Add(s)
	}
	oids := []uint32{pgjson.OIDInt8, pgjson.OIDNumeric, pgjson.OIDFloat8, pgjson.OIDBool, pgjson.OIDText, pgjson.OIDBytea,
		pgjson.OIDTimestamptz, pgjson.OIDTimestamp, 1007, 1009, 1185, 1001}
	f.Fuzz(func(t *testing.T, s string) {
		for _, oid := range oids {
			typ, _ := pgjson.Lookup(oid)
			if out := typ.Enc(nil, []byte(s)); !json.Valid(out) {
				t.Fatalf("oid %d: %q → invalid JSON %s", oid, s, out)
			}
		}
	})
}

var sink []byte

func benchEncode(b *testing.B, oid uint32, in string) {
	typ, _ := pgjson.Lookup(oid)
	src := []byte(in)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		buf = typ.Enc(buf[:0], src)
	}
	sink = buf
}

func BenchmarkInt8(b *testing.B) { benchEncode(b, pgjson.OIDInt8, "-9223372036854775808") }
func BenchmarkNumeric(b *testing.B) {
	benchEncode(b, pgjson.OIDNumeric, "1234567890123456789012345678901234567890.0123456789")
}
func BenchmarkText(b *testing.B) {
	benchEncode(b, pgjson.OIDText, "The quick brown fox jumps over the lazy dog, then again and again.")
}
func BenchmarkTextEscapes(b *testing.B) {
	benchEncode(b, pgjson.OIDText, "line \"one\"\nline two\tés ☃ \\ end")
}
func BenchmarkTimestamptz(b *testing.B) {
	benchEncode(b, pgjson.OIDTimestamptz, "2024-01-02 03:04:05.123456+00")
}
func BenchmarkBytea(b *testing.B) {
	benchEncode(b, pgjson.OIDBytea, `\x000102030405060708090a0b0c0d0e0f`)
}
func BenchmarkIntArray(b *testing.B) { benchEncode(b, 1007, "{1,2,3,NULL,5,6,7,8,9,10}") }
func BenchmarkTextArray(b *testing.B) {
	benchEncode(b, 1009, `{alpha,"beta gamma","de\"lta",NULL}`)
}
func BenchmarkJSONB(b *testing.B) {
	benchEncode(b, pgjson.OIDJSONB, `{"a": 1, "b": [true, null, "x"], "c": {"d": 2.5}}`)
}

func TestByteaLarge(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 5000)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	src := append([]byte(`\x`), []byte(hex.EncodeToString(raw))...)
	got := pgjson.Bytea(nil, src)
	want := `"` + base64.StdEncoding.EncodeToString(raw) + `"`
	if string(got) != want {
		t.Errorf("5000-byte bytea: got %d bytes, want %d", len(got), len(want))
	}
}
