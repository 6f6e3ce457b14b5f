package api

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// FuzzDecodeJSON checks that any body yields either a decoded value or a 4xx
// with a code, never a panic or a 5xx.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"name":`, "{\"name\":\"\xff\"}", `{"name":5}`, `[]`, `null`, ``, `{"is_private":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v createDBReq
		err := DecodeJSON(httptest.NewRequest("POST", "/", bytes.NewReader(b)), &v, false)
		if err == nil {
			return
		}
		e := apierr.As(err)
		if e.Status < 400 || e.Status >= 500 || e.Code == "" {
			t.Fatalf("body %q: %d %q", b, e.Status, e.Code)
		}
	})
}
