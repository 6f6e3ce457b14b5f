package lambdatest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// get and post play the runtime side of the protocol with plain HTTP calls.
func get(t *testing.T, s *Server, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.Addr()+prefix+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func post(t *testing.T, s *Server, path, body string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+s.Addr()+prefix+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	type outcome struct {
		r   Result
		err error
	}
	results := make(chan outcome, 2)
	go func() {
		r, err := s.Invoke(t.Context(), []byte(`{"n":1}`), 3*time.Second)
		results <- outcome{r, err}
	}()
	resp := get(t, s, "invocation/next")
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	dl, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
	resp.Body.Close()
	if id == "" || err != nil || resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn") != FunctionArn || resp.Header.Get("Lambda-Runtime-Trace-Id") == "" {
		t.Fatalf("next headers: %v", resp.Header)
	}
	if left := time.Until(time.UnixMilli(dl)); left <= 0 || left > 3*time.Second {
		t.Fatalf("deadline %v away, want within (0, 3s]", left)
	}
	select {
	case <-s.FirstNext():
	default:
		t.Fatal("FirstNext not closed after a /next poll")
	}
	if code := post(t, s, "invocation/"+id+"/response", `{"ok":true}`); code != http.StatusAccepted {
		t.Fatalf("response: %d", code)
	}
	if o := <-results; o.err != nil || string(o.r.Payload) != `{"ok":true}` || o.r.Err != nil || o.r.RequestID != id {
		t.Fatalf("Invoke = %+v, %v", o.r, o.err)
	}
	if code := post(t, s, "invocation/"+id+"/response", `{}`); code != http.StatusBadRequest {
		t.Fatalf("second answer for %s: %d, want 400", id, code)
	}

	go func() {
		r, err := s.Invoke(t.Context(), []byte(`{}`), time.Second)
		results <- outcome{r, err}
	}()
	resp = get(t, s, "invocation/next")
	id = resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	resp.Body.Close()
	if code := post(t, s, "invocation/"+id+"/error", `{"errorMessage":"boom","errorType":"bad_request"}`); code != http.StatusAccepted {
		t.Fatalf("error: %d", code)
	}
	if o := <-results; o.err != nil || o.r.Err == nil || o.r.Err.ErrorType != "bad_request" || o.r.Err.ErrorMessage != "boom" {
		t.Fatalf("Invoke = %+v, %v", o.r, o.err)
	}

	if code := post(t, s, "init/error", `{"errorMessage":"no config","errorType":"Runtime.InitError"}`); code != http.StatusAccepted {
		t.Fatalf("init/error: %d", code)
	}
	if _, err := s.Invoke(t.Context(), []byte(`{}`), time.Second); err == nil || !strings.Contains(err.Error(), "no config") {
		t.Fatalf("Invoke after an init error = %v, want the init error", err)
	}
	if code := post(t, s, "invocation/x/unknown", `{}`); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
}
