package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// compressionRuns is how many times each answer of (g) is fetched.
const compressionRuns = 8

var compOnly bool

func init() {
	flag.BoolVar(&compOnly, "compression-only", false, "run only the compressed-answers comparison (g)")
}

// compareCompression runs (g): the 100k-row points table as one JSON answer
// and as an NDJSON stream, uncompressed, gzip and zstd (Accept-Encoding):
// bytes on the wire, bitd's CPU per answer (from /proc/<pid>/stat) and the
// time to receive it. Every compressed answer is checked to decode to the
// uncompressed one.
func compareCompression(ep, key, db string, pid int) error {
	// No transparent decompression: the body read is what crossed the wire.
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	body := fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT id, name, v, at FROM points ORDER BY id","timeout_ms":600000}`, db)
	fmt.Printf("(g) %d-row answer (SELECT id, name, v, at FROM points), %d runs each, one client; bitd CPU from /proc\n", pointRows, compressionRuns)
	for _, accept := range []string{"application/json", "application/x-ndjson"} {
		var plain []byte
		var plainCPU time.Duration
		for _, enc := range []string{"", "gzip", "zstd"} {
			var wire []byte
			start, cpu0 := time.Now(), cpuTime(pid)
			for range compressionRuns {
				b, got, err := fetchEncoded(c, ep, key, body, accept, enc)
				if err != nil {
					return fmt.Errorf("(g) %s %s: %w", accept, enc, err)
				}
				if got != enc {
					return fmt.Errorf("(g) %s: asked for %q, got Content-Encoding %q", accept, enc, got)
				}
				wire = b
			}
			cpu := (cpuTime(pid) - cpu0) / compressionRuns
			elapsed := time.Since(start) / compressionRuns
			dec, err := decodeAnswer(enc, wire)
			if err != nil {
				return fmt.Errorf("(g) %s %s: decode: %w", accept, enc, err)
			}
			name := enc
			if enc == "" {
				plain, plainCPU, name = dec, cpu, "identity"
			} else if !bytes.Equal(dec, plain) {
				return fmt.Errorf("(g) %s %s: the decoded answer differs from the uncompressed one", accept, enc)
			}
			cpuNote := ""
			if enc != "" && plainCPU > 0 {
				cpuNote = fmt.Sprintf(" (%.2f× uncompressed)", float64(cpu)/float64(plainCPU))
			}
			fmt.Printf("    %-20s %-8s %10d bytes on the wire (%5.1f%%)  bitd CPU %6.1f ms/answer%s  %7.1f ms/answer\n",
				accept, name, len(wire), 100*float64(len(wire))/float64(len(plain)), float64(cpu.Microseconds())/1000, cpuNote,
				float64(elapsed.Microseconds())/1000)
		}
	}
	return nil
}

// fetchEncoded posts a query with Accept and Accept-Encoding enc (none when
// empty) and returns the body as sent and its Content-Encoding.
func fetchEncoded(c *http.Client, ep, key, body, accept, enc string) ([]byte, string, error) {
	req, err := http.NewRequest(http.MethodPost, ep+"/v2beta/query", strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	if enc != "" {
		req.Header.Set("Accept-Encoding", enc)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return b, resp.Header.Get("Content-Encoding"), nil
}

func decodeAnswer(enc string, b []byte) ([]byte, error) {
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	return b, nil
}
