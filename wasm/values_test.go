//go:build js && wasm

package main

import (
	"bytes"
	"testing"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// Run with `make test-web` (GOOS=js GOARCH=wasm go test ./wasm, under Node).

func TestCamel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"storage_limit_bytes": "storageLimitBytes",
		"id":                  "id",
		"error_details":       "errorDetails",
		"StatusURL":           "statusUrl",
		"ID":                  "id",
		"DateCreated":         "dateCreated",
		"APIKey":              "apiKey",
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if got := camel(in); got != want {
				t.Fatalf("camel(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestCamelizeKeepsDataKeys(t *testing.T) {
	t.Parallel()
	in := map[string]any{"error_type": "x", "error_details": map[string]any{"expected_fields": 2.0}, "progress": map[string]any{"bytes_done": 1.0}}
	out := camelize(in).(map[string]any)
	if out["errorType"] != "x" || out["errorDetails"].(map[string]any)["expected_fields"] != 2.0 || out["progress"].(map[string]any)["bytesDone"] != 1.0 {
		t.Fatalf("camelize = %#v", out)
	}
}

func TestAppendRow(t *testing.T) {
	t.Parallel()
	cols := []core.Column{
		{Name: "big", TypeOID: oidInt8}, {Name: "i4", TypeOID: 23}, {Name: "n", TypeOID: oidNumeric},
		{Name: "f", TypeOID: 701}, {Name: "arr", TypeOID: oidInt8Array}, {Name: "j", TypeOID: 3802}, {Name: "s", TypeOID: 25},
		{Name: "ts", TypeOID: oidTimestamptz},
	}
	row := []any{jsonx.Number("9223372036854775807"), jsonx.Number("7"), jsonx.Number("1.50"), jsonx.Number("2.5"),
		[]any{jsonx.Number("9007199254740993"), nil}, map[string]any{"a": jsonx.Number("1")}, "x\"y", "2026-01-02T03:04:05Z"}
	// int4, float8 and jsonb numbers stay JSON numbers; int8 and numeric
	// (also in arrays) are written as exact digit strings for the decoder,
	// whatever the value options (bitkit.mjs's rowSpec applies those; the
	// browser tests check every option, in query results and streams).
	const written = `["9223372036854775807",7,"1.50",2.5,["9007199254740993",null],{"a":1},"x\"y","2026-01-02T03:04:05Z"]`
	var buf bytes.Buffer
	if err := appendRow(&buf, row, columnKinds(cols)); err != nil {
		t.Fatal(err)
	}
	if buf.String() != written {
		t.Fatalf("appendRow = %s\nwant        %s", buf.String(), written)
	}
}
