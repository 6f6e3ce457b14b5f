// Package fnhttp answers HTTP for a serverless function of your own on
// bitkit's Go client (an AWS Lambda handler, a Cloudflare Worker route, any
// net/http handler): it maps an error of package core to the status and JSON
// body that bitkit's own Lambda function and Worker answer, so that callers
// of your function see the same error shape as callers of bitd:
//
//	{"error": "…", "code": "sql_error", "sqlstate": "42P01", "position": 15, "request_id": "…"}
//
// The mapping: a deadline (the function's own or bitd's statement timeout)
// is 504 "timeout"; an answer of bitd keeps its status, code and PostgreSQL
// fields, except that bitd's 5xx become 502 (an upstream failure for your
// caller); a canceled request is 503 "canceled"; anything else (bitd not
// reached) is 502 "upstream_unreachable". No credential ever appears in the
// body: core's errors carry none.
package fnhttp

import (
	"net/http"
	"time"

	"github.com/bitkit-dev/bitkit/internal/fnquery"
)

// Error is a failure as a function answers it: Status is the HTTP status,
// the other fields are the JSON body (Error.JSON).
type Error = fnquery.Error

// Classify maps err to the answer described in the package comment. It
// returns nil for a nil err. limit and limitName, when set, say which time
// limit a timeout hit ("the Lambda deadline", "BITKIT_TIMEOUT_MS") in the
// message; zero values give a generic message.
func Classify(err error, limit time.Duration, limitName string) *Error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	return fnquery.Classify(err, limit, limitName)
}

// Status returns the HTTP status and JSON body of err's answer.
func Status(err error) (status int, body []byte) {
	e := Classify(err, 0, "")
	if e == nil {
		return http.StatusOK, nil
	}
	return e.Status, e.JSON()
}

// WriteError writes err's answer to w: status, Content-Type
// application/json and the JSON body. It does nothing for a nil err.
func WriteError(w http.ResponseWriter, err error) {
	status, body := Status(err)
	if body == nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
