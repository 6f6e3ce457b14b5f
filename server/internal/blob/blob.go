// Package blob opens the blob store that holds uploaded import files and
// finished export files, through gocloud.dev/blob.
//
// The store is named by a URL:
//
//   - "" (the default): a local directory, DATA/blobs, created on first use
//     (driver fileblob).
//   - "file:///abs/dir": a local directory.
//   - "s3://bucket?region=eu-west-1&prefix=bitkit/": Amazon S3 or any
//     S3-compatible store (driver s3blob). Credentials come from the usual AWS
//     environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an
//     instance role...). For MinIO and other S3-compatible servers add
//     "&endpoint=http://127.0.0.1:9000&use_path_style=true" (see the
//     gocloud.dev s3blob documentation for every query parameter).
//
// A *blob.Bucket is safe for concurrent use; the caller closes it.
package blob

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gblob "gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // registers s3:// URLs
)

// Bucket is the gocloud.dev bucket type, re-exported so that callers need not
// import gocloud.dev themselves.
type Bucket = gblob.Bucket

// Open opens the blob store named by url, or the directory dataDir/blobs when
// url is empty. The directory is created (mode 0700) when missing.
func Open(ctx context.Context, url, dataDir string) (*Bucket, error) {
	if url == "" {
		if dataDir == "" {
			return nil, fmt.Errorf("blob store: no URL and no data directory: pass --data DIR or a blob URL (file:///dir or s3://bucket)")
		}
		return OpenDir(filepath.Join(dataDir, "blobs"))
	}
	if dir, ok := strings.CutPrefix(url, "file://"); ok && !strings.Contains(dir, "?") {
		return OpenDir(dir)
	}
	b, err := gblob.OpenBucket(ctx, url)
	if err != nil {
		// the driver's message may repeat the URL, whose query can hold keys
		return nil, fmt.Errorf("open blob store %q: %s", redact(url), strings.ReplaceAll(err.Error(), url, redact(url)))
	}
	return b, nil
}

// OpenDir opens a local directory as a bucket, creating it when missing.
func OpenDir(dir string) (*Bucket, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create blob directory: %w", err)
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true})
	if err != nil {
		return nil, fmt.Errorf("open blob directory %s: %w", dir, err)
	}
	return b, nil
}

// redact drops the query of a URL (it may hold credentials) for messages.
func redact(url string) string {
	if i := strings.IndexByte(url, '?'); i >= 0 {
		return url[:i] + "?…"
	}
	return url
}
