package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

func TestDevCACreatedOnceAndVerifies(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(ca.CACert)
	fi, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode: %v %v", fi.Mode(), err)
	}
	leafPEM, _ := os.ReadFile(ca.Cert)
	// A second call keeps the CA and the still-valid leaf.
	ca2, err := EnsureDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	caPEM2, _ := os.ReadFile(ca2.CACert)
	leafPEM2, _ := os.ReadFile(ca2.Cert)
	if string(caPEM) != string(caPEM2) || string(leafPEM) != string(leafPEM2) {
		t.Fatal("EnsureDevCA replaced an existing CA or valid leaf")
	}
	// A deleted leaf is issued again by the same CA.
	os.Remove(ca.Cert)
	if _, err := EnsureDevCA(dir); err != nil {
		t.Fatal(err)
	}
	if caPEM3, _ := os.ReadFile(ca.CACert); string(caPEM3) != string(caPEM) {
		t.Fatal("the CA changed when only the leaf was missing")
	}
	pool, err := LoadCertPool(ca.CACert)
	if err != nil {
		t.Fatal(err)
	}
	f, err := LoadFiles(ca.Cert, ca.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range DevNames {
		if _, err := f.Leaf().Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("leaf for %s: %v", name, err)
		}
	}
	if _, err := f.Leaf().Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("the leaf verified for a name it was not issued for")
	}
	if _, err := f.Leaf().Verify(x509.VerifyOptions{DNSName: "localhost", Roots: x509.NewCertPool()}); err == nil {
		t.Error("the leaf verified without its CA")
	}
}

func TestFilesReloadOnChangeAndKeepOnError(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsureDevCA(dir); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem")
	if err := IssueDevCert(dir, []string{"one.example"}, cert, key); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := LoadFiles(cert, key, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go f.Watch(ctx, 20*time.Millisecond)
	served := func() string {
		c, err := f.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.DNSNames[0]
	}
	if got := served(); got != "one.example" {
		t.Fatalf("serving %s", got)
	}
	// Replaced files are picked up without a signal.
	if err := IssueDevCert(dir, []string{"two.example"}, cert, key); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return served() == "two.example" })
	// A broken certificate file is refused and the old one kept.
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil {
		t.Fatal("Reload accepted a broken certificate file")
	}
	time.Sleep(100 * time.Millisecond) // several watch ticks
	if got := served(); got != "two.example" {
		t.Fatalf("after a broken file: serving %s", got)
	}
	// SIGHUP's path: an explicit Reload.
	if err := IssueDevCert(dir, []string{"three.example"}, cert, key); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "three.example" {
		t.Fatalf("after Reload: serving %s", got)
	}
}

func TestLoadFilesErrorsNameTheFiles(t *testing.T) {
	if _, err := LoadFiles("/nonexistent/cert.pem", "/nonexistent/key.pem", nil); err == nil {
		t.Fatal("no error for missing files")
	} else if !contains(err.Error(), "/nonexistent/cert.pem") {
		t.Fatalf("error does not name the file: %v", err)
	}
	if _, err := LoadFiles("x.pem", "", nil); err == nil || !contains(err.Error(), "--tls-key") {
		t.Fatalf("want advice about --tls-key, got %v", err)
	}
}

func TestServerConfigALPN(t *testing.T) {
	a, err := NewACME(ACMEConfig{Domains: []string{"db.example.com"}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := ServerConfig(a).NextProtos; len(got) != 3 || got[2] != "acme-tls/1" {
		t.Fatalf("ACME NextProtos %v", got)
	}
	if _, err := NewACME(ACMEConfig{Domains: []string{"localhost"}, CacheDir: t.TempDir()}); err == nil {
		t.Fatal("NewACME accepted a name without a dot")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, 10*time.Second, func() error {
		if !cond() {
			return errors.New("condition not met")
		}
		return nil
	})
}
