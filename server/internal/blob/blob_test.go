package blob

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenDefaultDir(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	b, err := Open(t.Context(), "", data)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(t.Context(), "uploads/x", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(data, "blobs", "uploads", "x"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("file = %q, %v", got, err)
	}
	r, err := b.NewReader(t.Context(), "uploads/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if all, _ := io.ReadAll(r); string(all) != "hello" {
		t.Fatalf("read back %q", all)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := Open(t.Context(), "", ""); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("no dir: %v", err)
	}
	_, err := Open(t.Context(), "nosuch://bucket?secret=s3cr3t", "")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("unknown scheme: %v (the URL query must not appear)", err)
	}
	b, err := Open(t.Context(), "file://"+t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
