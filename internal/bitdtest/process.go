package bitdtest

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a program StartProcess runs.
type Process struct {
	Cmd *exec.Cmd
	// Exited is closed once the program has exited.
	Exited <-chan struct{}
}

// StartProcess runs argv in a process group of its own, its output in the
// file logPath, until the test ends: t.Cleanup stops it by its pid
// (SIGTERM, then SIGKILL when it has not exited after grace). Cleanups the
// caller registered before run after it has stopped.
func StartProcess(t testing.TB, logPath string, grace time.Duration, argv ...string) *Process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", argv[0], err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return &Process{Cmd: cmd, Exited: exited}
}
