// Package benchbitd starts a throwaway `bitd dev --ephemeral` for the
// benchmark commands (cmd/bitbench, cmd/bitbench-create): a fresh metadata
// database and data directory, the cluster's URL passed in the environment
// (never in argv, where ps shows it), ready once demo.env holds an API key.
package benchbitd

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Bitd is a running bitd.
type Bitd struct {
	Env  map[string]string // demo.env: BITKIT_ENDPOINT, BITKIT_API_KEY, …
	Meta string            // its metadata database
	Pid  int

	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
	data string
}

// Find returns bin, or the first bitd binary of ../bin/bitd, bin/bitd and
// ../../bin/bitd (the benchmarks run from server/ or the repository root).
func Find(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	for _, p := range []string{"../bin/bitd", "bin/bitd", "../../bin/bitd"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("no bitd binary at ../bin/bitd: run `make bin/bitd` or pass --bitd")
}

// Start runs `bin dev --ephemeral` on the cluster at dbURL with args added
// (e.g. --http 127.0.0.1:0 --pg ""), and waits up to 90 s for it to be ready.
func Start(bin, dbURL string, args ...string) (*Bitd, error) {
	data, err := os.MkdirTemp("", "bitbench-")
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(data, "bitd.log"))
	if err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	meta := "bitbench_meta_" + hex.EncodeToString(b)
	cmd := exec.Command(bin, append([]string{"dev", "--metadata-db", meta, "--data", data, "--ephemeral"}, args...)...)
	cmd.Env = append(os.Environ(), "BITD_DATABASE_URL="+dbURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(data)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &Bitd{Meta: meta, Pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{}), logf: logf, data: data}
	go func() { _ = cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if env, err := readEnv(filepath.Join(data, "demo.env")); err == nil && env["BITKIT_API_KEY"] != "" {
			d.Env = env
			return d, nil
		}
		select {
		case <-d.done:
			logs, _ := os.ReadFile(logf.Name())
			d.Stop()
			return nil, fmt.Errorf("bitd exited during start-up:\n%s", logs)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, errors.New("bitd did not become ready within 90s")
		}
	}
}

// Stop sends SIGTERM, kills bitd if it has not exited after 90 s (the
// --ephemeral clean-up can take a while on a busy cluster) and removes its
// data directory.
func (d *Bitd) Stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(90 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.logf.Close()
	os.RemoveAll(d.data)
}

func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, nil
}
