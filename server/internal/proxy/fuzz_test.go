package proxy

import (
	"bytes"
	"testing"
)

// FuzzStartup feeds untrusted bytes to the startup-phase parsers: the
// startup packet, the database name and the password message that follows.
// Seeds live in testdata/fuzz/FuzzStartup.
func FuzzStartup(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"))                                                                  // SSLRequest
	f.Add([]byte("\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x01\x01\x02\x03\x04"))                                  // CancelRequest
	f.Add([]byte("\x00\x00\x00\x2a\x00\x03\x00\x00user\x00x\x00database\x00alice/db\x00\x00p\x00\x00\x00\x08key\x00")) // startup + password
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		p, err := readStartup(r)
		if err != nil {
			return
		}
		if p.isStartup() {
			if db, ok := parseDatabase(p.params["database"]); ok {
				if again, ok2 := parseDatabase(db); !ok2 || again != db {
					t.Fatalf("parseDatabase(%q) = %q, which parses to %q, %v", p.params["database"], db, again, ok2)
				}
			}
		}
		if pw, err := readPassword(r); err == nil && bytes.IndexByte([]byte(pw), 0) >= 0 {
			t.Fatalf("password %q contains NUL", pw)
		}
	})
}
