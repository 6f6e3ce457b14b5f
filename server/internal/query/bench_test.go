package query_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func benchPost(b *testing.B, url, body string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkServeQuerySelect1 measures the handler alone (no auth, a static
// resolver) over real HTTP and PostgreSQL: SELECT 1 from parallel clients.
func BenchmarkServeQuerySelect1(b *testing.B) {
	e := setup(b)
	benchPost(b, e.srv.URL+"/v2beta/query", `{"database_name":"acct/owner","query_string":"SELECT 1"}`)
}

// BenchmarkServeQueryPoint measures a parameterised point query.
func BenchmarkServeQueryPoint(b *testing.B) {
	e := setup(b)
	benchPost(b, e.srv.URL+"/v2beta/query", `{"database_name":"acct/owner","query_string":"SELECT id, name FROM items WHERE id = $1","params":[1]}`)
}
