package ingest

import (
	"strconv"
	"testing"
)

// A CSV of small ids becomes integer (not smallint), so that the next row
// with an id above 32767 still fits; a value beyond integer's range makes
// the column bigint.
func TestInferIntegerWidths(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		extra []string // values after the ids 1..20000
		json  bool     // the cells are JSON numbers, not text
		want  string
	}{
		{"small_ids_text", nil, false, "integer"},
		{"small_ids_json", nil, true, "integer"},
		{"negative_small", []string{"-5", "0"}, false, "integer"},
		{"integer_max", []string{"2147483647", "-2147483648"}, false, "integer"},
		{"above_integer", []string{"2147483648"}, false, "bigint"},
		{"below_integer_json", []string{"-2147483649"}, true, "bigint"},
		{"bigint_max", []string{"9223372036854775807"}, false, "bigint"},
		{"beyond_bigint", []string{"9223372036854775808"}, false, "numeric"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var in Inferrer
			kind := Text
			if c.json {
				kind = Number
			}
			in.Add([]Cell{{Kind: Text, S: "id"}})
			for i := 1; i <= 20000; i++ {
				in.Add([]Cell{{Kind: kind, S: strconv.Itoa(i)}})
			}
			for _, v := range c.extra {
				in.Add([]Cell{{Kind: kind, S: v}})
			}
			if got := in.Types(1, true)[0]; got != c.want {
				t.Fatalf("type of the id column = %s, want %s", got, c.want)
			}
		})
	}
}
