package jsonx

import (
	"bytes"
	"testing"
)

func TestRoundTripKeepsNumbersExact(t *testing.T) {
	t.Parallel()
	in := []byte(`{"big":9223372036854775807,"num":12345678901234567890.123456789012345678901,"raw":{"a":[1,2]}}`)
	var v struct {
		Big Number     `json:"big"`
		Num Number     `json:"num"`
		Raw RawMessage `json:"raw"`
	}
	if err := Unmarshal(in, &v); err != nil {
		t.Fatal(err)
	}
	if v.Big != "9223372036854775807" || v.Num != "12345678901234567890.123456789012345678901" {
		t.Fatalf("numbers changed: %q %q", v.Big, v.Num)
	}
	out, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("round trip:\n got %s\nwant %s", out, in)
	}
	if !Valid(out) || Valid([]byte(`{"a":`)) {
		t.Fatal("Valid disagrees")
	}
}
