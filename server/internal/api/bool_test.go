package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// is_private and other booleans are JSON booleans or the strings "true" and
// "false" (the Python bit.io CLI sends "is_private": "false"); anything else
// is a 400 naming the field.
func TestDecodeBool(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body    string
		want    *bool
		errWant string
	}{
		{`{"is_private": true}`, ptr(true), ""},
		{`{"is_private": false}`, ptr(false), ""},
		{`{"is_private": "true"}`, ptr(true), ""},
		{`{"is_private": "false"}`, ptr(false), ""},
		{`{"is_private": "False"}`, ptr(false), ""},
		{`{"is_private": null}`, nil, ""},
		{`{}`, nil, ""},
		{`{"is_private": "no"}`, nil, `field "is_private" must be true or false (a JSON boolean, or the string "true" or "false"), not string "no"`},
		{`{"is_private": 0}`, nil, `field "is_private" must be true or false (a JSON boolean, or the string "true" or "false"), not number 0`},
		{`{"is_private": ["x"]}`, nil, `field "is_private" must be true or false`},
	}
	for _, c := range cases {
		t.Run(c.body, func(t *testing.T) {
			t.Parallel()
			var req updateDBReq
			err := DecodeJSON(httptest.NewRequest("PATCH", "/", strings.NewReader(c.body)), &req, true)
			if c.errWant != "" {
				var ae *apierr.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != "is_private" || !strings.Contains(ae.Message, c.errWant) {
					t.Fatalf("err = %#v, want a 400 on is_private saying %q", err, c.errWant)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := BoolPtr(req.IsPrivate)
			if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
				t.Fatalf("is_private = %v, want %v", got, c.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
