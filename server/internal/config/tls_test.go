package config

import (
	"strings"
	"testing"
)

func TestValidateTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // "" = valid
	}{
		{"none", func(*Config) {}, ""},
		{"files", func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, ""},
		{"cert without key", func(c *Config) { c.TLSCert = "c.pem" }, "--tls-cert and --tls-key go together"},
		{"files and ACME", func(c *Config) { c.TLSCert, c.TLSKey, c.ACMEDomains = "c.pem", "k.pem", "db.example.com" }, "give one of them"},
		{"ACME", func(c *Config) { c.ACMEDomains, c.ACMEEmail = "db.example.com", "ops@example.com" }, ""},
		{"ACME options alone", func(c *Config) { c.ACMEDirectory = "https://acme.example/dir" }, "need --acme-domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.DatabaseURL = "postgres://x@localhost/postgres"
			tc.set(&c)
			err := c.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
