package lambdatest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Function is a Lambda handler's main package built and running against its
// own Server, as in a Lambda execution environment.
type Function struct {
	// API is the Runtime API the function polls.
	API *Server

	mu   sync.Mutex
	logs bytes.Buffer
}

// Logs returns what the function printed so far (stdout and stderr).
func (f *Function) Logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs.String()
}

func (f *Function) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs.Write(p)
}

// StartFunction builds the main package pkg (a path such as "./cmd/myfunc",
// relative to the test's directory) with the go command and the tags
// lambda.norpc, as for provided.al2023, then runs it with
// AWS_LAMBDA_RUNTIME_API set to a fresh Server plus env ("KEY=value") and the
// usual Lambda variables. The process and the server stop in t.Cleanup. It
// fails the test when the build fails or the function does not poll for an
// event within 60 seconds.
func StartFunction(t testing.TB, pkg string, env ...string) *Function {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, pkg)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("lambdatest: go build %s: %v\n%s", pkg, err, out)
	}
	api, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	f := &Function{API: api}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+api.Addr(),
		"AWS_LAMBDA_FUNCTION_NAME=lambdatest", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_REGION=us-east-1")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		api.Close()
		t.Fatalf("lambdatest: starting %s: %v", pkg, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		api.Close()
	})
	select {
	case <-api.FirstNext():
	case <-api.InitError():
		t.Fatalf("lambdatest: %s failed to initialize: %v\n%s", pkg, api.InitErr(), f.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("lambdatest: %s did not poll the Runtime API within 60s\n%s", pkg, f.Logs())
	}
	return f
}

// Invoke sends payload as the next event with a deadline of timeout and
// returns the outcome; it fails the test when no answer comes within
// timeout plus 30 seconds.
func (f *Function) Invoke(t testing.TB, payload []byte, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout+30*time.Second)
	defer cancel()
	r, err := f.API.Invoke(ctx, payload, timeout)
	if err != nil {
		t.Fatalf("lambdatest: %v\n%s", err, f.Logs())
	}
	return r
}
