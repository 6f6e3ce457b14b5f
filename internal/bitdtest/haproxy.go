package bitdtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// HAProxy is a HAProxy process started by StartHAProxy.
type HAProxy struct {
	// Dir holds haproxy.cfg and haproxy.log (its standard output and
	// error: a configuration that logs to stdout writes its log there).
	Dir string
	// Log is the path of haproxy.log.
	Log string
}

// StartHAProxy runs the Debian package's haproxy with the configuration
// cfg until the test ends: it writes cfg to a directory of the test's,
// has haproxy check it (-c), starts it in the foreground (-db), and waits
// until it accepts connections on addr (one of cfg's binds). The process
// is stopped by its pid in t.Cleanup (SIGTERM, SIGKILL after 10 s).
func StartHAProxy(t *testing.T, cfg, addr string) *HAProxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil { // not on a PATH without the sbin directories
		bin = "/usr/sbin/haproxy"
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatal("haproxy is not installed: run scripts/deps.sh (it installs the Debian package haproxy) or apt-get install haproxy")
		}
	}
	h := &HAProxy{Dir: t.TempDir()}
	h.Log = filepath.Join(h.Dir, "haproxy.log")
	path := filepath.Join(h.Dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects the configuration: %v\n%s", err, out)
	}
	exited := StartProcess(t, h.Log, 10*time.Second, bin, "-db", "-f", path).Exited
	testwait.Eventually(t, 20*time.Second, func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(h.Log)
			t.Fatalf("haproxy exited: %s", b)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return fmt.Errorf("haproxy does not accept on %s: %w", addr, err)
		}
		c.Close()
		return nil
	})
	return h
}
