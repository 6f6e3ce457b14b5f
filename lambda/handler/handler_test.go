package handler

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
)

// These tests cover the answers decided without bitd; the full path runs
// the real bootstrap binary against bitd in lambda/cmd/bootstrap.
func TestInvokeWithoutBitd(t *testing.T) {
	t.Parallel()
	unconfigured := New(func(string) string { return "" })
	configured := New(func(k string) string {
		return map[string]string{"BITKIT_ENDPOINT": "http://127.0.0.1:1", "BITKIT_API_KEY": "key-123"}[k]
	})
	httpEv := func(method, path, body string) []byte {
		b, _ := json.Marshal(events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path, Body: body,
			RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path}}})
		return b
	}
	httpTests := []struct {
		name    string
		h       *Handler
		payload []byte
		status  int
		part    string
	}{
		{"healthz without configuration", unconfigured, httpEv("GET", "/prod/healthz/", ""), 200, `"ok"`},
		{"missing endpoint", unconfigured, httpEv("POST", "/", `{"database":"a/b","query":"select 1"}`), 500, "BITKIT_ENDPOINT"},
		{"bad body before configuration", unconfigured, httpEv("POST", "/", `nope`), 400, "bad_request"},
		{"PUT", configured, httpEv("PUT", "/", ""), 405, "method_not_allowed"},
		{"empty body", configured, httpEv("POST", "/", ""), 400, "empty body"},
	}
	for _, tc := range httpTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := tc.h.Invoke(t.Context(), tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			var resp events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(resp.Body, tc.part) || strings.Contains(resp.Body, "key-123") {
				t.Fatalf("%d %s, want %d containing %s", resp.StatusCode, resp.Body, tc.status, tc.part)
			}
		})
	}
	t.Run("direct invoke errors carry the code as errorType", func(t *testing.T) {
		t.Parallel()
		_, err := unconfigured.Invoke(context.Background(), []byte(`{"database":"a/b","query":"select 1"}`))
		var ie messages.InvokeResponse_Error
		if !errors.As(err, &ie) || ie.Type != "missing_configuration" || !strings.Contains(ie.Message, "BITKIT_ENDPOINT") {
			t.Fatalf("Invoke error = %#v", err)
		}
	})
	t.Run("unreachable bitd is 502", func(t *testing.T) {
		t.Parallel()
		_, err := configured.Invoke(t.Context(), []byte(`{"database":"a/b","query":"select 1"}`))
		var ie messages.InvokeResponse_Error
		if !errors.As(err, &ie) || ie.Type != "upstream_unreachable" || strings.Contains(ie.Message, "key-123") {
			t.Fatalf("Invoke error = %#v", err)
		}
	})
}
