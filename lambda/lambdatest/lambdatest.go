// Package lambdatest is a local implementation of the AWS Lambda Runtime API
// (version 2018-06-01), the HTTP interface a custom runtime such as a
// provided.al2023 "bootstrap" polls for invocations: a test harness for
// Lambda handlers, yours or bitkit's. Start a Server, run your handler's
// binary with AWS_LAMBDA_RUNTIME_API set to Server.Addr and drive it with
// Server.Invoke; StartFunction does the three steps for a main package
// (aws-lambda-go's lambda.Start, built with -tags lambda.norpc):
//
//	fn := lambdatest.StartFunction(t, "./cmd/myfunc", "BITKIT_ENDPOINT="+url)
//	res := fn.Invoke(t, []byte(`{"name":"x"}`), 10*time.Second)
//	// res.Payload (the handler's answer) or res.Err (its error)
//
// Implemented, as documented by AWS:
//
//	GET  /2018-06-01/runtime/invocation/next            → event, with Lambda-Runtime-Aws-Request-Id,
//	                                                       Lambda-Runtime-Deadline-Ms, Lambda-Runtime-Invoked-Function-Arn,
//	                                                       Lambda-Runtime-Trace-Id
//	POST /2018-06-01/runtime/invocation/{id}/response   → 202
//	POST /2018-06-01/runtime/invocation/{id}/error      → 202 (body {"errorMessage", "errorType", ...})
//	POST /2018-06-01/runtime/init/error                 → 202
//
// It checks our reading of the contract, not AWS's emulator: one invocation
// is handed out at a time, like one Lambda execution environment, and the
// deadline is only announced (the process is not frozen or killed at it).
package lambdatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const prefix = "/2018-06-01/runtime/"

// FunctionArn is the ARN announced in Lambda-Runtime-Invoked-Function-Arn.
const FunctionArn = "arn:aws:lambda:us-east-1:000000000000:function:bitkit-local"

// FunctionError is the body a runtime posts to .../error or init/error.
type FunctionError struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	StackTrace   []string `json:"stackTrace,omitempty"`
}

// Error returns "<type>: <message>".
func (e *FunctionError) Error() string { return e.ErrorType + ": " + e.ErrorMessage }

// Result is the outcome of one invocation: exactly one of Payload (posted to
// .../response) or Err (posted to .../error) is set.
type Result struct {
	RequestID string
	Payload   []byte
	Err       *FunctionError
	// Latency runs from the moment the event was handed to the runtime
	// (answer of /next) to the moment its response or error arrived.
	Latency time.Duration
}

type invocation struct {
	id      string
	payload []byte
	timeout time.Duration
	handed  time.Time
	done    chan Result
}

// Server serves the Runtime API on a 127.0.0.1 port. Methods are safe for
// concurrent use. Close it when done.
type Server struct {
	ln    net.Listener
	srv   *http.Server
	queue chan *invocation

	mu        sync.Mutex
	seq       int
	inflight  map[string]*invocation
	initErr   *FunctionError
	initErrCh chan struct{}
	firstNext time.Time
	nextCh    chan struct{}
}

// Start listens on 127.0.0.1 (a free port) and serves the Runtime API.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambdatest: listen: %w", err)
	}
	s := &Server{
		ln:        ln,
		queue:     make(chan *invocation),
		inflight:  map[string]*invocation{},
		initErrCh: make(chan struct{}),
		nextCh:    make(chan struct{}),
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is the host:port to put in AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server; pending /next polls are dropped.
func (s *Server) Close() error { return s.srv.Close() }

// FirstNext is closed when the runtime polls /next for the first time, i.e.
// when its initialisation is done; FirstNextAt then tells when.
func (s *Server) FirstNext() <-chan struct{} { return s.nextCh }

// FirstNextAt is the time of the first /next poll (zero before it).
func (s *Server) FirstNextAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstNext
}

// InitError is closed when the runtime posted to /runtime/init/error;
// InitErr then returns the posted error.
func (s *Server) InitError() <-chan struct{} { return s.initErrCh }

// InitErr returns the error posted to /runtime/init/error, or nil.
func (s *Server) InitErr() *FunctionError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initErr
}

// Invoke hands payload to the runtime as the next event, announcing a
// deadline of timeout after the moment the runtime receives it, and waits for its response or error. It fails
// when ctx ends first, or when the runtime reported an init error.
func (s *Server) Invoke(ctx context.Context, payload []byte, timeout time.Duration) (Result, error) {
	s.mu.Lock()
	s.seq++
	inv := &invocation{
		id:      fmt.Sprintf("req-%06d", s.seq),
		payload: payload,
		timeout: timeout,
		done:    make(chan Result, 1),
	}
	s.mu.Unlock()
	select {
	case s.queue <- inv:
	case <-s.initErrCh:
		return Result{}, fmt.Errorf("lambdatest: the runtime reported an init error: %w", s.InitErr())
	case <-ctx.Done():
		return Result{}, fmt.Errorf("lambdatest: no runtime polled /next for %s: %w", inv.id, ctx.Err())
	}
	select {
	case r := <-inv.done:
		return r, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("lambdatest: no answer for %s: %w", inv.id, ctx.Err())
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		http.Error(w, `{"errorMessage":"unknown path","errorType":"InvalidRequest"}`, http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		s.next(w, r)
	case r.Method == http.MethodPost && path == "init/error":
		fe, err := readError(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		if s.initErr == nil {
			s.initErr = fe
			close(s.initErrCh)
		}
		s.mu.Unlock()
		accepted(w)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		rest := strings.TrimPrefix(path, "invocation/")
		id, kind, ok := strings.Cut(rest, "/")
		if !ok || (kind != "response" && kind != "error") {
			http.Error(w, `{"errorMessage":"unknown path","errorType":"InvalidRequest"}`, http.StatusNotFound)
			return
		}
		s.mu.Lock()
		inv := s.inflight[id]
		delete(s.inflight, id)
		s.mu.Unlock()
		if inv == nil {
			http.Error(w, `{"errorMessage":"unknown or already answered request id","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
			return
		}
		res := Result{RequestID: id, Latency: time.Since(inv.handed)}
		if kind == "response" {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			res.Payload = b
		} else {
			fe, err := readError(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			res.Err = fe
		}
		inv.done <- res
		accepted(w)
	default:
		http.Error(w, `{"errorMessage":"unknown path","errorType":"InvalidRequest"}`, http.StatusNotFound)
	}
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.firstNext.IsZero() {
		s.firstNext = time.Now()
		close(s.nextCh)
	}
	s.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	}
	inv.handed = time.Now()
	s.mu.Lock()
	s.inflight[inv.id] = inv
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.handed.Add(inv.timeout).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", FunctionArn)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0")
	w.WriteHeader(http.StatusOK)
	w.Write(inv.payload)
}

func readError(r *http.Request) (*FunctionError, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	fe := &FunctionError{}
	if err := json.Unmarshal(b, fe); err != nil {
		return nil, fmt.Errorf("error body is not {errorMessage, errorType}: %w", err)
	}
	if fe.ErrorType == "" {
		fe.ErrorType = r.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if fe.ErrorMessage == "" && fe.ErrorType == "" {
		return nil, errors.New("error body has neither errorMessage nor errorType")
	}
	return fe, nil
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"status":"OK"}`))
}
