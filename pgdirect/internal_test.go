package pgdirect

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRetrySafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"bitd idle close", &pgconn.PgError{Severity: "FATAL", Code: "57P05"}, true},
		{"wrapped idle close", fmt.Errorf("begin: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P05"}), true},
		{"admin shutdown", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, false},
		{"statement error", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, false},
		{"plain EOF", io.ErrUnexpectedEOF, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := retrySafe(tc.err); got != tc.want {
				t.Fatalf("retrySafe(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	inner := &pgconn.PgError{Code: "28P01", Message: "bad"}
	key := "v2_" + strings.Repeat("k", 43)
	err := redact(fmt.Errorf("connect with %s: %w", key, inner), key)
	if strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("redact: %q", err)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("errors.As through redact: %v", err)
	}
	if plain := errors.New("no secret"); redact(plain, key) != plain {
		t.Fatal("redact changed an error without the key")
	}
}

func TestNewConfigDefaults(t *testing.T) {
	t.Setenv("BITKIT_PG_ADDR", "")
	c, err := NewConfig("v2_key")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != DefaultAddr || c.SSLMode != "verify-full" || c.MaxConns != 100 || c.MinConns != 0 || c.MaxConnIdleTime != DefaultMaxConnIdleTime {
		t.Fatalf("defaults: %+v", c)
	}
	t.Setenv("BITKIT_PG_ADDR", "10.0.0.1:5433")
	if c, _ := NewConfig("v2_key"); c.Addr != "10.0.0.1:5433" {
		t.Fatalf("BITKIT_PG_ADDR not used: %s", c.Addr)
	}
	if c, _ := NewConfig("v2_key", WithAddr("127.0.0.1:1")); c.Addr != "127.0.0.1:1" {
		t.Fatalf("WithAddr not used: %s", c.Addr)
	}
}
