package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// TestStallDeadline: behind StallDeadline a body that keeps arriving may
// take longer than the server's ReadTimeout, and a silent one fails with a
// 408 body_timeout error.
func TestStallDeadline(t *testing.T) {
	t.Parallel()
	h := StallDeadline(2*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			apierr.Write(w, r, err)
			return
		}
		fmt.Fprintf(w, "read %d", len(b))
	}))
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ReadTimeout = 300 * time.Millisecond
	ts.Start()
	defer ts.Close()

	send := func(t *testing.T, chunks int, length int) string {
		t.Helper()
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", length)
		for range chunks {
			if _, err := conn.Write([]byte("0123456789")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // 10 chunks: past the 300 ms ReadTimeout
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	t.Run("steady", func(t *testing.T) {
		if got := send(t, 10, 100); got != "200 read 100" {
			t.Fatalf("a body arriving steadily for 1 s: %q; want 200 read 100", got)
		}
	})
	t.Run("silent", func(t *testing.T) {
		if got := send(t, 2, 100); !strings.HasPrefix(got, "408 ") || !strings.Contains(got, "body_timeout") {
			t.Fatalf("a body that stops: %q; want 408 body_timeout", got)
		}
	})
}
