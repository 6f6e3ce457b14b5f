package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectSSLSettings: with the server's CA known, bit connect and bit
// psql ask libpq for verify-full against it; without, require.
func TestConnectSSLSettings(t *testing.T) {
	t.Parallel()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		mode     string
		rootCert string
		errPart  string
	}{
		{"no CA", nil, nil, "require", "", ""},
		{"env CA", nil, map[string]string{envCACert: ca}, "verify-full", ca, ""},
		{"flag CA", []string{"--sslrootcert", ca}, nil, "verify-full", ca, ""},
		{"explicit mode wins", []string{"--sslmode", "verify-ca"}, map[string]string{envCACert: ca}, "verify-ca", ca, ""},
		{"missing CA file", nil, map[string]string{envCACert: ca + ".missing"}, "", "", "BITKIT_CA_CERT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv, err := parse(commands(), append([]string{"connect", "-d", "a/b"}, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			inv.app = &app{getenv: func(k string) string { return tc.env[k] }}
			mode, root, err := inv.sslSettings()
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err = %v, want one naming %s", err, tc.errPart)
				}
				return
			}
			if err != nil || mode != tc.mode || root != tc.rootCert {
				t.Fatalf("sslSettings = %q %q %v, want %q %q", mode, root, err, tc.mode, tc.rootCert)
			}
		})
	}
	ci := connInfo{Host: "127.0.0.1", Port: "6432", Database: "alice/db", User: "alice", SSLMode: "verify-full", SSLRootCert: "/etc/bitkit/ca.pem"}
	if got, want := ci.uri(""), "postgresql://alice@127.0.0.1:6432/alice%2Fdb?sslmode=verify-full&sslrootcert=%2Fetc%2Fbitkit%2Fca.pem"; got != want {
		t.Errorf("uri = %q, want %q", got, want)
	}
}
