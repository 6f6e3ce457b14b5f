package blob

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestOpenS3 opens an s3:// URL against an S3-compatible server (gofakes3)
// listening on loopback: writes, ranged reads, attributes, listing and
// deletes go over real HTTP S3, and the object lands in the server's bucket.
func TestOpenS3(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "bitkit-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "bitkit-test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	be := s3mem.New()
	if err := be.CreateBucket("blobs"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gofakes3.New(be).Server()}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	url := fmt.Sprintf("s3://blobs?region=us-east-1&endpoint=http://%s&use_path_style=true", ln.Addr())
	b, err := Open(t.Context(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	payload := make([]byte, 3<<20) // more than one part of a streamed upload
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	w, err := b.NewWriter(t.Context(), "exports/job-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	obj, err := be.HeadObject("blobs", "exports/job-1")
	if err != nil || obj.Size != int64(len(payload)) {
		t.Fatalf("the S3 server holds %+v (%v), want %d bytes", obj, err, len(payload))
	}
	attrs, err := b.Attributes(t.Context(), "exports/job-1")
	if err != nil || attrs.Size != int64(len(payload)) {
		t.Fatalf("attributes %+v, %v", attrs, err)
	}
	r, err := b.NewRangeReader(t.Context(), "exports/job-1", 1000, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != string(payload[1000:1010]) {
		t.Fatalf("range read %v, want %v", got, payload[1000:1010])
	}
	if err := b.Delete(t.Context(), "exports/job-1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Exists(t.Context(), "exports/job-1"); ok || err != nil {
		t.Fatalf("after Delete: exists %v, %v", ok, err)
	}
}
