//go:build js

package core

import "reflect"

// No math/big types in this build: two types no value has.
var (
	bigIntType   = reflect.TypeFor[struct{ bigInt struct{} }]()
	bigFloatType = reflect.TypeFor[struct{ bigFloat struct{} }]()
)

// assignBig: the js/wasm build has no math/big destinations (see scan_big.go).
func assignBig(any, any) (bool, error) { return false, nil }
