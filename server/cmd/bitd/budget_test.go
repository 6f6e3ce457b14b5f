package main

import (
	"strings"
	"testing"
)

func TestBudgetShares(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                               string
		maxConns, reserved, cfgMax, cfgPer int
		total, per                         int
	}{
		{"PostgreSQL default", 100, 3, 0, 0, 61, 15},
		{"test cluster", 400, 3, 0, 0, 346, 86},
		{"dev cluster", 300, 3, 0, 0, 251, 62},
		{"small cluster: share at least 10", 60, 3, 0, 0, 23, 10},
		{"set", 400, 3, 40, 10, 40, 10},
		{"set total, derived share", 400, 3, 20, 0, 20, 10},
		{"share capped by the total", 400, 3, 8, 0, 8, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, per, err := budgetShares(tc.maxConns, tc.reserved, tc.cfgMax, tc.cfgPer)
			if err != nil || total != tc.total || per != tc.per {
				t.Fatalf("budgetShares = %d, %d, %v; want %d, %d", total, per, err, tc.total, tc.per)
			}
		})
	}
	_, _, err := budgetShares(30, 3, 0, 0)
	if err == nil || !strings.Contains(err.Error(), "raise max_connections, or set --max-backend-conns") {
		t.Fatalf("a cluster too small: %v, want an error with the fix", err)
	}
}
