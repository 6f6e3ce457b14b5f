package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DevCA is the development certificate authority of `bitd dev --tls` and
// the leaf certificate it signed for this machine.
type DevCA struct {
	// CACert is the CA certificate (PEM): the file clients trust
	// (BITKIT_CA_CERT, psql's sslrootcert, NODE_EXTRA_CA_CERTS).
	CACert string
	// Cert and Key are the leaf certificate (PEM, leaf then CA) and its key,
	// valid for DevNames.
	Cert, Key string
}

// DevNames are the names and addresses the development leaf certificate is
// valid for.
var DevNames = []string{"localhost", "127.0.0.1", "::1"}

// Lifetimes of the development CA and leaf; the leaf is issued again when
// it has less than devLeafRenew left (or the CA changed).
const (
	devCALifetime   = 10 * 365 * 24 * time.Hour
	devLeafLifetime = 397 * 24 * time.Hour
	devLeafRenew    = 30 * 24 * time.Hour
)

// EnsureDevCA returns the development CA under dir, creating it the first
// time (ca.pem, ca-key.pem), and a leaf certificate for DevNames signed by
// it (localhost.pem, localhost-key.pem), issued again when missing, near
// its end or not signed by the CA. Keys are written with mode 0600.
func EnsureDevCA(dir string) (*DevCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("development CA: %w", err)
	}
	d := &DevCA{
		CACert: filepath.Join(dir, "ca.pem"),
		Cert:   filepath.Join(dir, "localhost.pem"),
		Key:    filepath.Join(dir, "localhost-key.pem"),
	}
	caKeyPath := filepath.Join(dir, "ca-key.pem")
	ca, caKey, err := loadPair(d.CACert, caKeyPath)
	if errors.Is(err, os.ErrNotExist) {
		ca, caKey, err = createCA(d.CACert, caKeyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("development CA in %s: %w (delete the directory to create a new CA; clients must then trust the new ca.pem)", dir, err)
	}
	leaf, _, err := loadPair(d.Cert, d.Key)
	if err == nil && leaf.CheckSignatureFrom(ca) == nil && time.Until(leaf.NotAfter) > devLeafRenew && coversDevNames(leaf) {
		return d, nil
	}
	if err := issueLeaf(ca, caKey, d.Cert, d.Key, DevNames, devLeafLifetime); err != nil {
		return nil, fmt.Errorf("development certificate in %s: %w", dir, err)
	}
	return d, nil
}

func coversDevNames(leaf *x509.Certificate) bool {
	for _, n := range DevNames {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// IssueDevCert signs a certificate for names with the development CA in
// dir (which EnsureDevCA created) and writes it (PEM, leaf then CA) and its
// key to certFile and keyFile. Tests use it for certificates of other names.
func IssueDevCert(dir string, names []string, certFile, keyFile string) error {
	ca, caKey, err := loadPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return fmt.Errorf("development CA in %s: %w", dir, err)
	}
	return issueLeaf(ca, caKey, certFile, keyFile, names, devLeafLifetime)
}

// loadPair reads a PEM certificate (the first block) and an EC key.
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(cb)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	kblk, _ := pem.Decode(kb)
	if kblk == nil {
		return nil, nil, fmt.Errorf("%s holds no PEM key", keyFile)
	}
	key, err := x509.ParseECPrivateKey(kblk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return cert, key, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func createCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"bitkit development CA"}, CommonName: "bitd dev CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(devCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(keyFile, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certFile, 0o644, der); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func issueLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string, names []string, life time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{Organization: []string{"bitkit development"}, CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	// The key first: a watcher that sees the new certificate finds its key.
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return writePEM(certFile, 0o644, der, ca.Raw)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(path, 0o600, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}))
}

func writePEM(path string, mode os.FileMode, ders ...[]byte) error {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return writeFile(path, mode, out)
}

// writeFile replaces path atomically (temporary file and rename).
func writeFile(path string, mode os.FileMode, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
