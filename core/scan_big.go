//go:build !js

package core

import (
	"fmt"
	"math/big"
	"reflect"
)

var (
	bigIntType   = reflect.TypeFor[big.Int]()
	bigFloatType = reflect.TypeFor[big.Float]()
)

// assignBig stores v into a *big.Int or *big.Float destination; ok is false
// for other destinations. The js/wasm build leaves math/big out (it is a
// tenth of the browser module): scan exact values there into *jsonx.Number
// or *string.
func assignBig(d any, v any) (ok bool, err error) {
	switch p := d.(type) {
	case *big.Int:
		if v == nil {
			return true, errNull
		}
		s, err := numText(v)
		if err != nil {
			return true, err
		}
		if _, ok := p.SetString(s, 10); !ok {
			return true, fmt.Errorf("%q is not an integer", s)
		}
		return true, nil
	case *big.Float:
		if v == nil {
			return true, errNull
		}
		s, err := numText(v)
		if err != nil {
			return true, err
		}
		prec := uint(len(s)*4 + 64)
		if p.Prec() > prec {
			prec = p.Prec()
		}
		if _, _, err := big.ParseFloat(s, 10, prec, big.ToNearestEven); err != nil {
			return true, fmt.Errorf("%q is not a number", s)
		}
		f, _, _ := big.ParseFloat(s, 10, prec, big.ToNearestEven)
		p.Set(f)
		return true, nil
	}
	return false, nil
}
