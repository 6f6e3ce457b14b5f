//go:build linux || darwin || freebsd || netbsd || openbsd

package pgalive

import (
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestBroken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		peer func(net.Conn)
		want bool
	}{
		{"idle", func(net.Conn) {}, false},
		{"unread data", func(c net.Conn) { _, _ = c.Write([]byte("E")) }, true},
		{"closed by peer", func(c net.Conn) { c.Close() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := pair(t)
			tc.peer(server)
			if tc.want {
				// Wait until the kernel has the byte or the FIN.
				testwait.Eventually(t, 10*time.Second, func() error {
					if !Broken(client) {
						return errors.New("the byte or the FIN has not arrived")
					}
					return nil
				})
			}
			if got := Broken(client); got != tc.want {
				t.Errorf("Broken = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBrokenWhileAnotherReadWaits checks that Broken does not wait for a
// read in progress on the same socket (pgconn's background reader can
// leave one pending on an idle pooled connection): it used to block until
// that read returned, which hung pool acquires for good.
func TestBrokenWhileAnotherReadWaits(t *testing.T) {
	t.Parallel()
	client, _ := pair(t)
	started := make(chan struct{})
	go func() {
		close(started)
		var b [1]byte
		_, _ = client.Read(b[:]) // returns when the test closes client
	}()
	<-started
	time.Sleep(20 * time.Millisecond) // let the read reach the poller
	done := make(chan bool)
	go func() { done <- Broken(client) }()
	select {
	case got := <-done:
		if got {
			t.Error("Broken = true on an idle connection")
		}
	case <-t.Context().Done():
		t.Fatal("Broken blocked behind another read")
	}
}

// TestGone: unread data is no sign of death for Gone; a close (with nothing
// unread) or, on Linux, a reset (even with unread data) is.
func TestGone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		peer func(net.Conn)
		want bool
	}{
		{"idle", func(net.Conn) {}, false},
		{"unread data", func(c net.Conn) { _, _ = c.Write([]byte("x")) }, false},
		{"closed by peer", func(c net.Conn) { c.Close() }, true},
	}
	if runtime.GOOS == "linux" {
		cases = append(cases, struct {
			name string
			peer func(net.Conn)
			want bool
		}{"reset with unread data", func(c net.Conn) {
			_, _ = c.Write([]byte("x"))
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := pair(t)
			tc.peer(server)
			if !tc.want {
				// Wait until what the peer sent has arrived (Broken
				// sees any unread byte), so that Gone judges it.
				if tc.name == "unread data" {
					testwait.Eventually(t, 10*time.Second, func() error {
						if !Broken(client) {
							return errors.New("the peer's data has not arrived")
						}
						return nil
					})
				}
			} else {
				_ = testwait.Wait(t.Context(), 5*time.Second, func() error {
					if !Gone(client) {
						return errors.New("not gone yet")
					}
					return nil
				})
			}
			if got := Gone(client); got != tc.want {
				t.Errorf("Gone = %v, want %v", got, tc.want)
			}
		})
	}
}
