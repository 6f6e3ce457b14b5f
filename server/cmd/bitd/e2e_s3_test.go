package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeS3 is an S3-compatible server (gofakes3, in memory) listening on a
// loopback port: bitd, a separate process, talks real S3 over HTTP to it.
type fakeS3 struct {
	Addr    string
	Backend *s3mem.Backend
	puts    atomic.Int64 // PUT and POST requests (uploads, multipart parts)
	gets    atomic.Int64
}

func startFakeS3(t *testing.T, bucket string) *fakeS3 {
	t.Helper()
	f := &fakeS3{Backend: s3mem.New()}
	if err := f.Backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	h := gofakes3.New(f.Backend).Server()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut, http.MethodPost:
			f.puts.Add(1)
		case http.MethodGet:
			f.gets.Add(1)
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return f
}

// objects lists the keys in bucket.
func (f *fakeS3) objects(t *testing.T, bucket string) []string {
	t.Helper()
	l, err := f.Backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range l.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}

// s3Env is the environment that points bitd's blob store at f.
func s3Env(f *fakeS3, bucket string) bitdtest.Option {
	return bitdtest.Env(
		"BITD_BLOB_URL="+fmt.Sprintf("s3://%s?region=us-east-1&endpoint=http://%s&use_path_style=true", bucket, f.Addr),
		"AWS_ACCESS_KEY_ID=bitkit-test", "AWS_SECRET_ACCESS_KEY=bitkit-test-secret",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
}

// TestBlobsOnS3 runs two replicas sharing an S3-compatible blob store: a
// file uploaded through one is imported, an export created through the
// other is downloaded through the first (its download URL rewritten to the
// other replica) and through the second; the files are in the S3 bucket,
// not on either replica's disk.
func TestBlobsOnS3(t *testing.T) {
	t.Parallel()
	const bucket = "bitkit-blobs"
	s3 := startFakeS3(t, bucket)
	a := bitdtest.Start(t, bitdtest.SharedSecret(), s3Env(s3, bucket))
	b := bitdtest.Start(t, bitdtest.Replica(a))
	key := a.APIKey

	want(t, call(t, "POST", a.Endpoint+"/v2beta/db/", key, map[string]any{"name": "s3db"}), http.StatusCreated, "")
	db := a.User + "/s3db"
	var csv strings.Builder
	csv.WriteString("id,name\n")
	const n = 2000
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&csv, "%d,name-%d\n", i, i)
	}
	job := importCSV(t, a.Endpoint, key, db, "people", csv.String())
	if job.Status != http.StatusAccepted && job.Status != http.StatusOK {
		t.Fatalf("import answered %d: %s", job.Status, job.Raw)
	}
	if st := waitJob(t, key, job); st.str("state") != "DONE" {
		t.Fatalf("import ended %s", st.Raw)
	}
	r := sqlAs(t, b.Endpoint, key, db, "select count(*) from people")
	want(t, r, 200, "")
	if got := fmt.Sprint(r.Body["data"]); got != fmt.Sprintf("[[%d]]", n) {
		t.Fatalf("replica b counts %s rows, want %d", got, n)
	}

	exp := call(t, "POST", b.Endpoint+"/v2beta/db/"+db+"/export/", key,
		map[string]any{"query_string": "select id, name from people order by id", "export_format": "csv"})
	want(t, exp, http.StatusAccepted, "")
	done := waitJob(t, key, exp)
	if done.str("state") != "DONE" {
		t.Fatalf("export ended %s", done.Raw)
	}
	dl := done.str("download_url")
	if !strings.HasPrefix(dl, b.Endpoint+"/") {
		t.Fatalf("download_url %q is not on replica b (%s)", dl, b.Endpoint)
	}
	for _, u := range []string{strings.Replace(dl, b.Endpoint, a.Endpoint, 1), dl} {
		res, err := httpClient.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("download from %s: %d %s", u, res.StatusCode, body)
		}
		if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != csv.String() {
			t.Fatalf("download from %s: %d bytes differ from the %d imported (start %.80q)", u, len(got), csv.Len(), got)
		}
	}

	keys := s3.objects(t, bucket)
	if len(keys) == 0 {
		t.Fatal("the S3 bucket is empty: the export file is not on S3")
	}
	t.Logf("bucket holds %v; S3 saw %d PUT/POST and %d GET requests", keys, s3.puts.Load(), s3.gets.Load())
	if s3.gets.Load() < 2 {
		t.Errorf("S3 saw %d GETs; want at least the two downloads", s3.gets.Load())
	}
	for _, s := range []*bitdtest.Server{a, b} {
		if ents, err := os.ReadDir(filepath.Join(s.DataDir, "blobs")); err == nil && len(ents) > 0 {
			t.Errorf("%s/blobs holds %d entries: blobs went to the local disk", s.DataDir, len(ents))
		}
	}
}
