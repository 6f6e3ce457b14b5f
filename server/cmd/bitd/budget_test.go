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

// TestOtherClusterBudget: a cluster other than the default one keeps back
// only bitd's admin and ad-hoc connections (no metadata pool, no job
// workers), so the same max_connections leaves it more for tenants.
func TestOtherClusterBudget(t *testing.T) {
	t.Parallel()
	total, per, err := budgetSharesOwn(100, 3, ownOtherClusterConns, 0, 0)
	if err != nil || total != 77 || per != 19 {
		t.Fatalf("budgetSharesOwn(100, 3, %d) = %d, %d, %v; want 77, 19", ownOtherClusterConns, total, per, err)
	}
	if d, _, _ := budgetShares(100, 3, 0, 0); d >= total {
		t.Fatalf("the default cluster's budget (%d) is not below another cluster's (%d) for the same settings", d, total)
	}
	if total, per, err := budgetSharesOwn(400, 3, ownOtherClusterConns, 40, 0); err != nil || total != 40 || per != 10 {
		t.Fatalf("a set --max-backend-conns applies to every cluster: %d, %d, %v", total, per, err)
	}
}
