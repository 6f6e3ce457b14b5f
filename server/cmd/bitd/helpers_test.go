package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/jackc/pgx/v5"
)

// resp is a decoded API answer.
type resp struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r resp) str(k string) string { s, _ := r.Body[k].(string); return s }

var httpClient = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// call sends a request with an optional bearer credential and JSON body
// (string or []byte sent as is; anything else is marshalled).
func call(t *testing.T, method, url, cred string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := jsonx.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	out := resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want JSON; body %s", method, url, ct, raw)
	}
	if err := jsonx.Unmarshal(raw, &out.Body); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, url, err, raw)
	}
	return out
}

// want fails unless r has the status (and, for errors, the code), and
// checks every error body has error and code.
func want(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Raw)
	}
	if status >= 400 {
		if r.str("error") == "" || r.str("code") == "" {
			t.Fatalf("error body lacks error/code: %s", r.Raw)
		}
		if code != "" && r.str("code") != code {
			t.Fatalf("code %q, want %q; body %s", r.str("code"), code, r.Raw)
		}
	}
}

// wireConn connects through the wire proxy as cred to database.
func wireConn(t *testing.T, s *bitdtest.Server, cred, database string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig("postgres://any@" + s.PGAddr + "/x?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password, cfg.Database = cred, database
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("wire connect to %s: %v", database, err)
	}
	t.Cleanup(func() { c.Close(t.Context()) })
	return c
}

// metadataDB returns the metadata database name of a bitdtest server.
func metadataDB(t *testing.T, s *bitdtest.Server) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "bitd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info adminInfo
	if err := jsonx.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	return info.MetadataDB
}
