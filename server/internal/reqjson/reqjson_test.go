package reqjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBool(t *testing.T) {
	t.Parallel()
	type req struct {
		On  Bool  `json:"on"`
		Opt *Bool `json:"opt"`
	}
	ok := map[string][2]any{
		`{"on": true}`:                   {true, nil},
		`{"on": "false", "opt": "TRUE"}`: {false, true},
		`{"on": " true ", "opt": false}`: {true, false},
		`{"on": null, "opt": null}`:      {false, nil},
	}
	for in, want := range ok {
		var r req
		if err := json.Unmarshal([]byte(in), &r); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if bool(r.On) != want[0] {
			t.Errorf("%s: on = %v", in, r.On)
		}
		if got := Ptr(r.Opt); (got == nil) != (want[1] == nil) || got != nil && *got != want[1] {
			t.Errorf("%s: opt = %v, want %v", in, got, want[1])
		}
	}
	bad := map[string]string{
		`{"on": "yes"}`: `string "yes"`,
		`{"on": 1}`:     "number 1",
		`{"opt": {}}`:   "object",
		`{"opt": [1]}`:  "array",
	}
	for in, value := range bad {
		field, got, isBool := BadBool([]byte(in), &req{})
		if !isBool || got != value || (field != "on" && field != "opt") {
			t.Errorf("%s: BadBool = %q %q %v, want the field and %q", in, field, got, isBool, value)
		}
	}
	if _, _, isBool := BadBool([]byte(`{"on": true}`), &req{}); isBool {
		t.Error("BadBool reports a valid body")
	}
}

// FuzzBool: any JSON value is either read as a boolean (only from true,
// false or those words as a string) or refused with a typed error.
func FuzzBool(f *testing.F) {
	for _, s := range []string{`true`, `"False"`, `"yes"`, `1`, `null`, `"`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b Bool
		err := b.UnmarshalJSON([]byte(s))
		if err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) || te.Type != BoolType {
				t.Fatalf("%q: untyped error %v", s, err)
			}
			return
		}
		if bool(b) && !strings.Contains(strings.ToLower(s), "true") {
			t.Fatalf("%q read as true", s)
		}
	})
}
