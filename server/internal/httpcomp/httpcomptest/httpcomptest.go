// Package httpcomptest decodes compressed HTTP answers in tests: the
// Content-Encodings bitd answers with (gzip, zstd; see package httpcomp).
package httpcomptest

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Reader returns r decoded from Content-Encoding enc ("" for none),
// failing t on an unknown encoding or a bad header. The decoder reads
// synchronously (no read-ahead), so a test can read a stream line by line
// while the server is still writing it; it is closed when t ends.
func Reader(t testing.TB, enc string, r io.Reader) io.Reader {
	t.Helper()
	switch enc {
	case "":
		return r
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip answer: %v", err)
		}
		return zr
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatalf("zstd answer: %v", err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("unexpected Content-Encoding %q", enc)
	return nil
}

// Decode returns b decoded from Content-Encoding enc ("" for none).
func Decode(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(Reader(t, enc, bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return out
}
