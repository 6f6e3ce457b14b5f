package pgdirect_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/pgdirect"
)

// TestVerifyFullDevCA: against `bitd dev --tls`, pgdirect verifies the
// proxy's certificate by default (verify-full) and connects only when it
// knows the dev CA; "require" skips the check only when named.
func TestVerifyFullDevCA(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.TLS())
	caPEM, err := os.ReadFile(s.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	db := s.User + "/nodb" // any name: the handshake comes first
	connect := func(opts ...pgdirect.Option) error {
		c, err := pgdirect.New(t.Context(), s.APIKey, append([]pgdirect.Option{pgdirect.WithAddr(s.PGAddr)}, opts...)...)
		if err != nil {
			return err
		}
		defer c.Close()
		conn, err := c.Connect(t.Context(), db)
		if err == nil {
			conn.Close(t.Context())
		}
		return err
	}
	isPG := func(err error) bool { // bitd answered: the TLS handshake passed
		var pe interface{ SQLState() string }
		return errors.As(err, &pe)
	}
	var uae x509.UnknownAuthorityError
	t.Setenv(pgdirect.EnvCACert, "")
	if err := connect(); !errors.As(err, &uae) {
		t.Fatalf("default without the CA: %v, want an unknown-authority error", err)
	}
	if err := connect(pgdirect.WithRootCAs(pool)); !isPG(err) {
		t.Fatalf("verify-full with WithRootCAs: %v, want bitd's answer", err)
	}
	if err := connect(pgdirect.WithSSLMode("require")); !isPG(err) {
		t.Fatalf("require (no verification): %v, want bitd's answer", err)
	}
	t.Setenv(pgdirect.EnvCACert, s.CACert)
	if err := connect(); !isPG(err) {
		t.Fatalf("verify-full with $BITKIT_CA_CERT: %v, want bitd's answer", err)
	}
	// Another name than the certificate's: refused.
	var hne x509.HostnameError
	if err := connect(pgdirect.WithAddr("localhost:"+portOf(s.PGAddr)), pgdirect.WithRootCAs(pool)); !isPG(err) {
		t.Fatalf("verify-full to localhost: %v, want bitd's answer", err)
	}
	if err := connect(pgdirect.WithTLSConfig(tlsConfigFor("other.example"))); !errors.As(err, &hne) {
		t.Fatalf("verify-full for other.example: %v, want a host-name error", err)
	}
}

func tlsConfigFor(name string) *tls.Config { return &tls.Config{ServerName: name} }

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
