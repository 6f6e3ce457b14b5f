package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/httpcomp/httpcomptest"
	"github.com/klauspost/compress/gzip"
)

// rawClient sends requests as given: no transparent gzip, so the test sees
// the bytes on the wire.
var rawClient = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{DisableCompression: true}}

// rawDo sends a request with the given headers and returns the answer with
// its body undecoded.
func rawDo(t *testing.T, method, u, key string, body []byte, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return res, b
}

// TestCompressedAnswers: the same 100k-row JSON and NDJSON answers with and
// without Accept-Encoding (gzip, zstd) are identical once decoded, and
// smaller on the wire.
func TestCompressedAnswers(t *testing.T) {
	s := bitdtest.Start(t)
	E, key := s.Endpoint, s.APIKey
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "comp"}), 201, "")
	db := s.User + "/comp"
	sql := `SELECT g AS id, md5(g::text) AS h, g / 7.0 AS q, TIMESTAMPTZ '2024-01-01' + g * INTERVAL '1 second' AS at, g % 2 = 0 AS even FROM generate_series(1, 100000) g`
	body, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": sql, "timeout_ms": 300000})
	for _, accept := range []string{"application/json", "application/x-ndjson"} {
		t.Run(accept, func(t *testing.T) {
			var plain []byte
			var plainWire int
			for _, enc := range []string{"", "gzip", "zstd"} {
				h := map[string]string{"Content-Type": "application/json", "Accept": accept}
				if enc != "" {
					h["Accept-Encoding"] = enc
				}
				res, raw := rawDo(t, "POST", E+"/v2beta/query", key, body, h)
				if res.StatusCode != 200 {
					t.Fatalf("%s: status %d: %.300s", enc, res.StatusCode, raw)
				}
				if got := res.Header.Get("Content-Encoding"); got != enc {
					t.Fatalf("Accept-Encoding %q: Content-Encoding %q", enc, got)
				}
				if vary := strings.Join(res.Header.Values("Vary"), ", "); !strings.Contains(vary, "Accept-Encoding") {
					t.Errorf("Vary %q lacks Accept-Encoding", vary)
				}
				dec := httpcomptest.Decode(t, enc, raw)
				if enc == "" {
					plain, plainWire = dec, len(raw)
					if n := bytes.Count(plain, []byte(`"`)); n < 100000 {
						t.Fatalf("the plain answer looks too short: %d bytes", len(plain))
					}
					continue
				}
				if !bytes.Equal(dec, plain) {
					t.Fatalf("%s answer differs after decoding: %d bytes vs %d", enc, len(dec), len(plain))
				}
				if len(raw) >= plainWire/2 {
					t.Errorf("%s: %d bytes on the wire for %d uncompressed", enc, len(raw), plainWire)
				}
				t.Logf("%s %s: %d bytes on the wire, %d uncompressed", accept, enc, len(raw), plainWire)
			}
		})
	}
	// An export download (a file with Content-Disposition) goes as stored,
	// even as JSON to a client that accepts gzip and zstd.
	exp := call(t, "POST", E+"/v2beta/db/"+db+"/export/", key, map[string]any{
		"export_format": "json", "query_string": "SELECT g, md5(g::text) FROM generate_series(1, 2000) g"})
	want(t, exp, 202, "")
	done := waitJob(t, key, exp)
	dl := done.str("download_url")
	if done.str("state") != "DONE" || dl == "" {
		t.Fatalf("export: %s", done.Raw)
	}
	res, raw := rawDo(t, "GET", dl, "", nil, map[string]string{"Accept-Encoding": "gzip, zstd"})
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "" || res.Header.Get("Content-Disposition") == "" ||
		res.Header.Get("Content-Length") != strconv.Itoa(len(raw)) || len(raw) < 2000*32 {
		t.Fatalf("export download: %d, Content-Encoding %q, Content-Length %q, %d bytes", res.StatusCode,
			res.Header.Get("Content-Encoding"), res.Header.Get("Content-Length"), len(raw))
	}

	// A tiny answer is not compressed.
	small, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": "SELECT 1"})
	res, raw = rawDo(t, "POST", E+"/v2beta/query", key, small, map[string]string{"Accept-Encoding": "gzip, zstd"})
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "" || !bytes.Contains(raw, []byte(`"data"`)) {
		t.Fatalf("SELECT 1: status %d, Content-Encoding %q: %s", res.StatusCode, res.Header.Get("Content-Encoding"), raw)
	}
}

// TestCompressedStreamFlushes: a compressed NDJSON stream delivers its
// first rows while the query is still running. The query blocks on an
// advisory lock the test holds through the wire proxy; the test reads the
// first row, then releases the lock and reads the rest.
func TestCompressedStreamFlushes(t *testing.T) {
	s := bitdtest.Start(t)
	E, key := s.Endpoint, s.APIKey
	want(t, call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "flush"}), 201, "")
	db := s.User + "/flush"
	for i, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			lock := 4200 + i
			holder := wireConn(t, s, key, db)
			if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_lock($1)", lock); err != nil {
				t.Fatal(err)
			}
			// 2000 rows of ~150 bytes (more than the stream's 64 KiB
			// buffer) come before the row that waits for the lock.
			sql := fmt.Sprintf(`SELECT g, repeat('x', 120) AS pad, CASE WHEN g = 2000 THEN pg_advisory_lock(%d)::text END AS waited FROM generate_series(1, 3000) g`, lock)
			body, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": sql, "timeout_ms": 120000})
			req, _ := http.NewRequestWithContext(t.Context(), "POST", E+"/v2beta/query", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Accept", "application/x-ndjson")
			req.Header.Set("Accept-Encoding", enc)
			res, err := rawClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != enc {
				t.Fatalf("status %d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
			}
			br := bufio.NewReader(httpcomptest.Reader(t, enc, res.Body))
			header, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(header, `{"columns":`) {
				t.Fatalf("header line %q: %v", header, err)
			}
			first, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(first, `[1,"xxx`) {
				t.Fatalf("first row %q: %v", first, err)
			}
			// The query is still waiting for the lock: release it.
			if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", lock); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, `"row_count":3000`) || len(lines) != 3000 {
				t.Fatalf("%d more lines, last %q", len(lines), last)
			}
		})
	}
}

// zeroBomb gzips n zero bytes without holding them.
func zeroBomb(t *testing.T, n int64) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	chunk := make([]byte, 1<<20)
	for ; n > 0; n -= int64(len(chunk)) {
		if _, err := zw.Write(chunk[:min(int64(len(chunk)), n)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// peakRSS returns the peak resident set size of pid in KiB.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestGzipRequestBodies: gzip-encoded request bodies are accepted; a gzip
// bomb is refused with 413 at the route's limit, counted after
// decompression, without bitd inflating it; corrupt gzip and other
// encodings are clear 400/415s.
func TestGzipRequestBodies(t *testing.T) {
	s := bitdtest.Start(t)
	E, key := s.Endpoint, s.APIKey
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return out.Bytes()
	}
	gzh := map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}

	res, raw := rawDo(t, "POST", E+"/v2beta/db/", key, gz([]byte(`{"name":"gzdb"}`)), gzh)
	if res.StatusCode != 201 {
		t.Fatalf("gzip create database: %d %s", res.StatusCode, raw)
	}
	q, _ := jsonx.Marshal(map[string]any{"database_name": s.User + "/gzdb", "query_string": "SELECT 40 + 2 AS answer"})
	res, raw = rawDo(t, "POST", E+"/v2beta/query", key, gz(q), gzh)
	if res.StatusCode != 200 || !bytes.Contains(raw, []byte("42")) {
		t.Fatalf("gzip query: %d %s", res.StatusCode, raw)
	}

	// 2 GiB of zeros, about 2 MiB compressed.
	bomb := zeroBomb(t, 2<<30)
	before := peakRSS(t, s.Pid())
	for _, path := range []string{"/v2beta/query", "/v2beta/db/"} {
		res, raw = rawDo(t, "POST", E+path, key, bomb, gzh)
		if res.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(raw, []byte("body_too_large")) {
			t.Fatalf("bomb to %s: %d %s", path, res.StatusCode, raw)
		}
		t.Logf("bomb to %s: %s", path, raw)
	}
	if !bytes.Contains(raw, []byte("after gzip decompression")) {
		t.Errorf("the 413 does not say the limit counts decompressed bytes: %s", raw)
	}
	// bitd read at most the 16 MiB limit, not the 2 GiB.
	if after := peakRSS(t, s.Pid()); after-before > 512<<10 {
		t.Fatalf("bitd's peak RSS grew by %d MiB for a refused bomb", (after-before)>>10)
	}

	res, raw = rawDo(t, "POST", E+"/v2beta/db/", key, []byte(`{"name":"x"}`), gzh)
	if res.StatusCode != 400 || !bytes.Contains(raw, []byte("not complete, valid gzip data")) {
		t.Fatalf("not gzip: %d %s", res.StatusCode, raw)
	}
	res, raw = rawDo(t, "POST", E+"/v2beta/db/", key, []byte(`{"name":"x"}`), map[string]string{"Content-Encoding": "br"})
	if res.StatusCode != http.StatusUnsupportedMediaType || !bytes.Contains(raw, []byte("unsupported_content_encoding")) {
		t.Fatalf("br: %d %s", res.StatusCode, raw)
	}
}

// TestPeerWireFormats: the request shapes the bit.io SDKs send, as they
// send them, and 400s naming the field for malformed variants.
func TestPeerWireFormats(t *testing.T) {
	s := bitdtest.Start(t)
	E, key, user := s.Endpoint, s.APIKey, s.User

	// go-bitdotio: JSON bodies without a Content-Type.
	res, raw := rawDo(t, "POST", E+"/v2beta/db/", key, []byte(`{"name":"peers"}`), nil)
	if res.StatusCode != 201 {
		t.Fatalf("create database without Content-Type: %d %s", res.StatusCode, raw)
	}
	db := user + "/peers"
	q, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": "SELECT 1 AS one"})
	res, raw = rawDo(t, "POST", E+"/v2beta/query", key, q, nil)
	if res.StatusCode != 200 || !bytes.Contains(raw, []byte(`"one"`)) {
		t.Fatalf("query without Content-Type: %d %s", res.StatusCode, raw)
	}
	res, raw = rawDo(t, "POST", E+"/v2beta/db/", key, []byte(`{"name":`), nil)
	if res.StatusCode != 400 || !bytes.Contains(raw, []byte("invalid_json")) {
		t.Fatalf("broken JSON without Content-Type: %d %s", res.StatusCode, raw)
	}

	// The Python CLI (bit db update -p false): is_private as a string.
	for _, c := range []struct {
		v    any
		want bool
	}{{"false", false}, {"true", true}, {false, false}, {"True", true}} {
		r := call(t, "PATCH", E+"/v2beta/db/"+db, key, map[string]any{"is_private": c.v})
		want(t, r, 200, "")
		if r.Body["is_private"] != c.want {
			t.Fatalf("is_private %#v: answer %s", c.v, r.Raw)
		}
		if g := call(t, "GET", E+"/v2beta/db/"+db, key, nil); g.Body["is_private"] != c.want {
			t.Fatalf("is_private %#v: stored %s", c.v, g.Raw)
		}
	}
	r := call(t, "POST", E+"/v2beta/db/", key, map[string]any{"name": "strpub", "is_private": "false"})
	want(t, r, 201, "")
	if r.Body["is_private"] != false {
		t.Fatalf(`create with "is_private": "false": %s`, r.Raw)
	}
	for _, bad := range []any{"nope", 1, ""} {
		r := call(t, "PATCH", E+"/v2beta/db/"+db, key, map[string]any{"is_private": bad})
		want(t, r, 400, "invalid_field")
		if r.str("field") != "is_private" || !strings.Contains(r.str("error"), "is_private") {
			t.Fatalf("is_private %#v: %s", bad, r.Raw)
		}
	}

	// The batch's read_only takes the same spellings.
	want(t, call(t, "POST", E+"/v2beta/query", key, map[string]any{"database_name": db, "query_string": "CREATE TABLE ro (n int)"}), 200, "")
	batch := func(ro any) resp {
		return call(t, "POST", E+"/v2beta/query/batch", key, map[string]any{"database_name": db, "read_only": ro,
			"queries": []map[string]any{{"query_string": "INSERT INTO ro VALUES (1)"}}})
	}
	if r := batch("true"); r.Status != 400 || r.str("sqlstate") != "25006" {
		t.Fatalf(`read_only "true": an INSERT was not refused as read-only: %s`, r.Raw)
	}
	want(t, batch("false"), 200, "")
	r = batch("maybe")
	want(t, r, 400, "invalid_field")
	if r.str("field") != "read_only" {
		t.Fatalf(`read_only "maybe": %s`, r.Raw)
	}

	// python-bitdotio create_import_job(file_url=…): a URL-encoded form.
	// 20,000 ids become an integer column (not smallint), so 40000 fits.
	var csv strings.Builder
	csv.WriteString("id,name\n")
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&csv, "%d,name %d\n", i, i)
	}
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, csv.String())
	}))
	defer files.Close()
	form := url.Values{"table_name": {"ids"}, "file_url": {files.URL + "/ids.csv"}}
	formH := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	res, raw = rawDo(t, "POST", E+"/v2beta/db/"+db+"/import/", key, []byte(form.Encode()), formH)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("form import: %d %s", res.StatusCode, raw)
	}
	job := resp{Status: res.StatusCode, Raw: raw}
	if err := jsonx.Unmarshal(raw, &job.Body); err != nil {
		t.Fatalf("form import answer %s: %v", raw, err)
	}
	if done := waitJob(t, key, job); done.str("state") != "DONE" {
		t.Fatalf("form import: %s", done.Raw)
	}
	colq, _ := jsonx.Marshal(map[string]any{"database_name": db,
		"query_string": "SELECT data_type FROM information_schema.columns WHERE table_name = 'ids' AND column_name = 'id'"})
	if _, raw = rawDo(t, "POST", E+"/v2beta/query", key, colq, nil); !bytes.Contains(raw, []byte(`"integer"`)) {
		t.Fatalf("the id column's type: %s", raw)
	}
	ins, _ := jsonx.Marshal(map[string]any{"database_name": db, "query_string": "INSERT INTO ids VALUES (40000, 'next') RETURNING id"})
	if res, raw = rawDo(t, "POST", E+"/v2beta/query", key, ins, nil); res.StatusCode != 200 || !bytes.Contains(raw, []byte("40000")) {
		t.Fatalf("insert 40000: %d %s", res.StatusCode, raw)
	}

	// Malformed imports: 400s naming the field.
	for _, c := range []struct {
		name, ctype, body, field, says string
	}{
		{"form_without_table", "application/x-www-form-urlencoded", url.Values{"file_url": {files.URL}}.Encode(), "table_name", "table_name is required"},
		{"form_bad_url", "application/x-www-form-urlencoded", url.Values{"table_name": {"t"}, "file_url": {"ftp://x/y.csv"}}.Encode(), "file_url", "absolute http or https URL"},
		{"form_without_url", "application/x-www-form-urlencoded", url.Values{"table_name": {"t"}}.Encode(), "file", "exactly one of a file part or file_url"},
		{"form_with_file", "application/x-www-form-urlencoded", "table_name=t&file=a,b%0A1,2", "file", "cannot carry a file"},
		{"form_twice", "application/x-www-form-urlencoded", "table_name=t&table_name=u&file_url=" + url.QueryEscape(files.URL), "table_name", "given 2 times"},
		{"json", "application/json", `{"table_name":"t","file_url":"` + files.URL + `"}`, "", "or an application/x-www-form-urlencoded one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, raw := rawDo(t, "POST", E+"/v2beta/db/"+db+"/import/", key, []byte(c.body), map[string]string{"Content-Type": c.ctype})
			var e struct {
				Code, Error, Field string
			}
			_ = jsonx.Unmarshal(raw, &e)
			if res.StatusCode != 400 || e.Field != c.field || !strings.Contains(e.Error, c.says) {
				t.Fatalf("%d %s; want 400 on field %q saying %q", res.StatusCode, raw, c.field, c.says)
			}
		})
	}
}
