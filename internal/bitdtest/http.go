package bitdtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Do sends req with http.DefaultClient and returns the answer with its
// body read and closed. A transport error or an unreadable body fails t
// (t.Fatal: call it from the test's goroutine).
func Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer of %s %s: %v", req.Method, req.URL.Path, err)
	}
	return resp, b
}

// BlockingFile serves body as a file at a URL ending in /name (an import's
// file_url), but answers only once release is called: hit is closed when
// the first request for it arrives, so a test can act while the job is
// fetching. Calling release again does nothing; it runs, and the server
// closes, when t ends.
func BlockingFile(t testing.TB, name string, body []byte) (url string, hit <-chan struct{}, release func()) {
	t.Helper()
	hitc, released := make(chan struct{}), make(chan struct{})
	var hitOnce, releaseOnce sync.Once
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitOnce.Do(func() { close(hitc) })
		select {
		case <-released:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(src.Close)
	release = func() { releaseOnce.Do(func() { close(released) }) }
	t.Cleanup(release) // before src.Close: a waiting answer must end first
	return src.URL + "/" + name, hitc, release
}
