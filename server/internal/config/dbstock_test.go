package config

import (
	"strings"
	"testing"
	"time"
)

// TestDBStockAndNameReservationFlags checks --db-stock and
// --name-reservation: defaults, overrides, the environment, and refusal of
// negative values.
func TestDBStockAndNameReservationFlags(t *testing.T) {
	parse := func(args []string) (*Config, error) {
		c := parsed(t, args)
		return c, c.Validate()
	}
	c, err := parse(nil)
	if err != nil || c.DBStock != 4 || c.NameReservation != 30*24*time.Hour {
		t.Fatalf("defaults: stock %d, reservation %v, %v; want 4 and 720h", c.DBStock, c.NameReservation, err)
	}
	if c, err := parse([]string{"--db-stock", "0", "--name-reservation", "0"}); err != nil || c.DBStock != 0 || c.NameReservation != 0 {
		t.Errorf("0 and 0: %d %v %v", c.DBStock, c.NameReservation, err)
	}
	if c, err := parse([]string{"--db-stock", "64", "--name-reservation", "1h"}); err != nil || c.DBStock != 64 || c.NameReservation != time.Hour {
		t.Errorf("64 and 1h: %d %v %v", c.DBStock, c.NameReservation, err)
	}
	for _, tc := range []struct{ flag, value string }{{"--db-stock", "-1"}, {"--db-stock", "1001"}, {"--name-reservation", "-1h"}} {
		if _, err := parse([]string{tc.flag, tc.value}); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s %s: Validate() = %v, want an error naming the flag", tc.flag, tc.value, err)
		}
	}
	t.Setenv("BITD_DB_STOCK", "9")
	t.Setenv("BITD_NAME_RESERVATION", "48h")
	if c, err := parse(nil); err != nil || c.DBStock != 9 || c.NameReservation != 48*time.Hour {
		t.Errorf("environment: %d %v %v", c.DBStock, c.NameReservation, err)
	}
}
