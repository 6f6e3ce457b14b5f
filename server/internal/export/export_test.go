package export

import (
	"testing"
)

func TestValueHelpers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		tz   bool
		want string
	}{
		{"2024-01-02 03:04:05.5+00", true, "2024-01-02T03:04:05.5Z"},
		{"2024-01-02 03:04:05", false, "2024-01-02T03:04:05"},
		{"infinity", true, "infinity"},
	} {
		if got := rfc3339(c.in, c.tz); got != c.want {
			t.Errorf("rfc3339(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for in, want := range map[string]bool{"1.5": true, "1.50": true, "0.1": true, "12345678901234567890.125": false, "-0": true} {
		var f float64
		switch in {
		case "1.5", "1.50":
			f = 1.5
		case "0.1":
			f = 0.1
		case "12345678901234567890.125":
			f = 12345678901234567890.125
		}
		if got := exactDecimal(in, f); got != want {
			t.Errorf("exactDecimal(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]bool{"1": true, "-2.5": true, "NaN": false, "Infinity": false, "-Infinity": false, "1e+300": true} {
		if got := isNumber([]byte(in)); got != want {
			t.Errorf("isNumber(%q) = %v, want %v", in, got, want)
		}
	}
	if TableQuery("", `we"ird`) != `SELECT * FROM "public"."we""ird"` {
		t.Errorf("TableQuery = %s", TableQuery("", `we"ird`))
	}
	if cleanQuery(" SELECT 1 ;; \n") != "SELECT 1" {
		t.Errorf("cleanQuery = %q", cleanQuery(" SELECT 1 ;; \n"))
	}
}
