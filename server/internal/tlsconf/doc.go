// Package tlsconf gives bitd's listeners (the HTTP API and the PostgreSQL
// wire proxy) their TLS certificates.
//
// A certificate comes from one of three sources, each a [Source]:
//
//   - [Files]: a PEM certificate chain and key (--tls-cert, --tls-key),
//     re-read on [Files.Reload] (bitd calls it on SIGHUP) and whenever
//     either file changes on disk ([Files.Watch]). A reload that fails
//     keeps the certificate in use and reports why.
//   - [ACME]: certificates obtained and renewed from an ACME CA (Let's
//     Encrypt by default) with golang.org/x/crypto/acme/autocert, answering
//     the TLS-ALPN-01 challenge on the HTTPS listener itself. They are
//     cached under the data directory; [ACME.Renew] orders a new one now.
//   - the development CA ([EnsureDevCA]): a local certificate authority
//     created once under bitd dev's data directory and a leaf certificate
//     for localhost, 127.0.0.1 and ::1 signed by it, so that clients can
//     verify bitd against the CA file instead of switching verification
//     off.
//
// [ServerConfig] builds the *tls.Config of a listener from a Source: TLS 1.2
// or later, HTTP/2 and HTTP/1.1 offered by ALPN (and acme-tls/1 for ACME).
package tlsconf
