//go:build !js

package core

import (
	"math/big"
	"testing"
)

// TestScanBig: exact int8 and numeric into math/big (native builds only).
func TestScanBig(t *testing.T) {
	t.Parallel()
	r := sampleResult(t)
	var num big.Float
	var bi big.Int
	if err := r.Scan(0, nil, &num, nil, nil, nil, nil, nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := num.Text('f', 1); got != "1234567890123456789012345678901234567890.5" {
		t.Fatalf("numeric via big.Float = %s", got)
	}
	if err := r.Scan(1, &bi, nil, nil, nil, nil, nil, nil, nil, nil, nil); err != nil || bi.String() != "-9223372036854775808" {
		t.Fatalf("int8 via big.Int = %s %v", bi.String(), err)
	}
}
