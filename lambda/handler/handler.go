// Package handler is bitkit's AWS Lambda function: it runs one SQL statement
// on bitd per invocation and answers the bit.io-shaped query result.
//
// It accepts two kinds of event:
//
//   - a Function URL or API Gateway HTTP API (payload 2.0) request
//     (events.APIGatewayV2HTTPRequest): POST with the JSON body
//     {"database", "query", "params", "data_format"} (base64-encoded bodies
//     too), GET .../healthz for a check that does not touch bitd. The answer
//     is an events.APIGatewayV2HTTPResponse whose body is the query result or
//     a JSON error {"error", "code", ...} with the matching status: 400 bad
//     request or SQL error (with "sqlstate"), 401/403 as bitd answered, 404
//     unknown database, 405 other methods, 413 body above 1 MiB, 500 missing
//     configuration (naming the variable), 502 bitd unreachable or failing,
//     504 the Lambda deadline reached.
//   - a direct invocation whose payload is that same JSON object. The answer
//     is the query result; a failure is a function error whose errorType is
//     the error code ("bad_request", "sql_error", "timeout",
//     "missing_configuration", ...) and whose errorMessage explains it.
//
// Configuration comes from the environment, read once when the function
// starts (see New): BITKIT_ENDPOINT, and BITKIT_API_KEY or BITKIT_USERNAME +
// BITKIT_PASSWORD. With a username the access token is kept in memory by the
// Handler's client and reused by every warm invocation of the execution
// environment, until it nears expiry. A missing setting does not crash the
// function: every invocation answers 500 "missing_configuration" naming the
// variable, so the cause shows up in the caller's answer, not only in logs.
//
// Each query is bounded by the invocation's deadline (minus a margin to
// answer in time), which core also sends to bitd as timeout_ms, so bitd
// cancels the statement itself. Nothing is logged; no error carries a secret.
package handler

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/bitkit-dev/bitkit/internal/fnquery"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// DeadlineMargin is kept free before the invocation's deadline to send the
// answer: the query is given the time left minus this.
const DeadlineMargin = 150 * time.Millisecond

// defaultLimit bounds a query when the context has no deadline (never the
// case under Lambda; tests and local runs).
const defaultLimit = 30 * time.Second

const limitName = "the Lambda invocation deadline; raise the function's Timeout"

// Handler handles invocations; it implements lambda.Handler. It is safe for
// concurrent use, and meant to be created once per execution environment.
type Handler struct {
	q   *fnquery.Error // configuration error, answered to every invocation
	run func(ctx context.Context, req fnquery.Request, limit time.Duration) ([]byte, *fnquery.Error)
}

// New builds a Handler from getenv (os.Getenv in the function). The bitd
// client, and with a username its token cache, is created here once.
func New(getenv func(string) string) *Handler {
	c, cfgErr := fnquery.NewClient(fnquery.ClientConfig{
		Getenv:        getenv,
		AllowPassword: true,
		How: func(name string) string {
			return "set " + name + " in the function's environment variables (template.yaml Environment.Variables)"
		},
		UserAgent: "bitkit-lambda",
	})
	h := &Handler{q: cfgErr}
	if cfgErr == nil {
		h.run = func(ctx context.Context, req fnquery.Request, limit time.Duration) ([]byte, *fnquery.Error) {
			return fnquery.Run(ctx, c, req, limit, limitName)
		}
	}
	return h
}

// FromEnv is New(os.Getenv).
func FromEnv() *Handler { return New(os.Getenv) }

// Invoke handles one event (see the package documentation).
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var probe map[string]jsonx.RawMessage
	if err := jsonx.Unmarshal(payload, &probe); err == nil {
		if _, ok := probe["requestContext"]; ok {
			return h.invokeHTTP(ctx, payload)
		}
	}
	body, e := h.query(ctx, payload)
	if e != nil {
		return nil, messages.InvokeResponse_Error{Type: e.Code, Message: e.Error()}
	}
	return body, nil
}

// query decodes and runs a query request body.
func (h *Handler) query(ctx context.Context, body []byte) ([]byte, *fnquery.Error) {
	req, e := fnquery.Decode(body)
	if e != nil {
		return nil, e
	}
	if h.q != nil {
		return nil, h.q
	}
	limit := defaultLimit
	if dl, ok := ctx.Deadline(); ok {
		limit = time.Until(dl) - DeadlineMargin
	}
	return h.run(ctx, req, limit)
}

func (h *Handler) invokeHTTP(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := jsonx.Unmarshal(payload, &ev); err != nil {
		return httpAnswer(nil, fnquery.BadRequest("the HTTP event is not an API Gateway v2 / Function URL payload: %v", err), nil)
	}
	method := strings.ToUpper(ev.RequestContext.HTTP.Method)
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	switch {
	case (method == http.MethodGet || method == http.MethodHead) && strings.HasSuffix(strings.TrimRight(path, "/"), "/healthz"):
		return httpAnswer([]byte(`{"status":"ok"}`), nil, nil)
	case method != http.MethodPost:
		e := &fnquery.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "use POST with a JSON body {\"database\", \"query\", \"params\", \"data_format\"} (or GET /healthz), not " + method}
		return httpAnswer(nil, e, map[string]string{"Allow": "POST, GET"})
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return httpAnswer(nil, fnquery.BadRequest("the body is marked base64-encoded but is not valid base64: %v", err), nil)
		}
		body = b
	}
	out, e := h.query(ctx, body)
	return httpAnswer(out, e, nil)
}

// httpAnswer encodes an API Gateway v2 response with body (200) or e.
func httpAnswer(body []byte, e *fnquery.Error, extra map[string]string) ([]byte, error) {
	resp := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusOK,
		Headers:    map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:       string(body),
	}
	if e != nil {
		resp.StatusCode = e.Status
		resp.Body = string(e.JSON())
	}
	for k, v := range extra {
		resp.Headers[k] = v
	}
	return jsonx.Marshal(resp)
}
