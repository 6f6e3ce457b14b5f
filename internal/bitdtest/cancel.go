package bitdtest

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// SendCancel sends a PostgreSQL CancelRequest for (pid, secret) on a new
// connection to addr, as libpq, pgx and lib/pq do, and waits until the
// server closes it (a proxy has handed the request on by then).
func SendCancel(t testing.TB, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := binary.BigEndian.AppendUint32(nil, uint32(12+len(secret)))
	b = binary.BigEndian.AppendUint32(b, 80877102) // the cancel request code
	b = binary.BigEndian.AppendUint32(b, pid)
	b = append(b, secret...)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}
