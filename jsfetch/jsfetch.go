//go:build js && wasm

// Package jsfetch is core's transport in js/wasm programs: a core.Fetcher
// built on the host's fetch (browsers, Web Workers, Node 18+, Cloudflare
// Workers), so that those builds link no net/http.
//
// Requests carry an AbortSignal that fires when their context ends, also
// while the body is read; response bodies stream through the
// ReadableStream's reader. fetch is called with no receiver
// (Reflect.apply(fetch, undefined, …)), which works also where globalThis is
// wrapped in a Proxy (syumai/workers), whose fetch otherwise throws
// "Illegal invocation". Redirects are not followed (redirect: "manual").
package jsfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
)

// NetworkError is a request that fetch rejected: the server was not
// reached, the connection broke, or the browser refused the answer (CORS).
// Browsers deliberately say no more than "Failed to fetch".
type NetworkError struct{ Err error }

func (e *NetworkError) Error() string { return "fetch failed: " + e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// Fetcher is a core.Fetcher on the global fetch. The zero value is ready.
type Fetcher struct{}

var _ core.Fetcher = Fetcher{}

// await waits for a Promise and returns its value or its rejection.
func await(p js.Value) (js.Value, error) {
	type outcome struct {
		v   js.Value
		err error
	}
	ch := make(chan outcome, 1)
	then := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- outcome{v: a[0]}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- outcome{err: jsError(a[0])}
		return nil
	})
	defer then.Release()
	defer catch.Release()
	p.Call("then", then, catch)
	o := <-ch
	return o.v, o.err
}

// jsError turns a JS rejection into a Go error (its name and message only).
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		name, msg := v.Get("name"), v.Get("message")
		if msg.Type() == js.TypeString {
			n := "Error"
			if name.Type() == js.TypeString {
				n = name.String()
			}
			if c := v.Get("cause"); c.Type() == js.TypeObject && c.Get("message").Type() == js.TypeString {
				return fmt.Errorf("%s: %s (%s)", n, msg.String(), c.Get("message").String())
			}
			return fmt.Errorf("%s: %s", n, msg.String())
		}
	}
	return errors.New("fetch failed: " + v.String())
}

// Fetch sends req with fetch.
func (Fetcher) Fetch(ctx context.Context, req *core.Request) (*core.Response, error) {
	if err := ctx.Err(); err != nil {
		closeBody(req.Body)
		return nil, err
	}
	init := js.Global().Get("Object").New()
	init.Set("method", req.Method)
	init.Set("redirect", "manual")
	headers := js.Global().Get("Headers").New()
	for k, vs := range req.Header {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	init.Set("headers", headers)
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		closeBody(req.Body)
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		arr := js.Global().Get("Uint8Array").New(len(b))
		js.CopyBytesToJS(arr, b)
		init.Set("body", arr)
	}
	ac := js.Global().Get("AbortController").New()
	init.Set("signal", ac.Get("signal"))
	stop := context.AfterFunc(ctx, func() { ac.Call("abort") })

	fetch := js.Global().Get("fetch")
	if fetch.Type() != js.TypeFunction {
		stop()
		return nil, errors.New("this JavaScript host has no fetch function")
	}
	args := js.Global().Get("Array").New(req.URL, init)
	respV, err := await(js.Global().Get("Reflect").Call("apply", fetch, js.Undefined(), args))
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &NetworkError{Err: err}
	}
	resp := &core.Response{StatusCode: respV.Get("status").Int(), Header: core.Header{}}
	each := js.FuncOf(func(_ js.Value, a []js.Value) any {
		resp.Header.Add(a[1].String(), a[0].String())
		return nil
	})
	respV.Get("headers").Call("forEach", each)
	each.Release()
	body := respV.Get("body")
	if body.IsNull() || body.IsUndefined() {
		stop()
		resp.Body = io.NopCloser(eofReader{})
		return resp, nil
	}
	resp.Body = &streamBody{ctx: ctx, reader: body.Call("getReader"), stop: stop}
	return resp, nil
}

func closeBody(b io.Reader) {
	if c, ok := b.(io.Closer); ok {
		c.Close()
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// streamBody reads a ReadableStream chunk by chunk.
type streamBody struct {
	ctx    context.Context
	reader js.Value
	stop   func() bool
	buf    []byte
	err    error
	closed bool
}

// StreamReader returns the ReadableStreamDefaultReader behind a response
// body of Fetcher that has not been read yet, so that JavaScript can read
// the rest itself (the chunks then never enter Go memory); ok is false for
// any other body. From then on the reader is JavaScript's: it reads it to
// its end or cancels it, and Read fails. The body must still be closed:
// Close ends the request's abort on context (the context's end aborts the
// fetch until then, which makes the reader's pending read reject).
func StreamReader(body io.Reader) (reader js.Value, ok bool) {
	s, ok := body.(*streamBody)
	if !ok || s.closed || s.err != nil || len(s.buf) > 0 {
		return js.Undefined(), false
	}
	s.err = errors.New("the response body was handed to JavaScript")
	return s.reader, true
}

func (s *streamBody) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		res, err := await(s.reader.Call("read"))
		if err != nil {
			if ctxErr := s.ctx.Err(); ctxErr != nil {
				err = ctxErr
			} else {
				err = &NetworkError{Err: err}
			}
			s.err = err
			s.stop()
			return 0, err
		}
		if res.Get("done").Bool() {
			s.err = io.EOF
			s.stop()
			return 0, io.EOF
		}
		v := res.Get("value")
		n := v.Get("byteLength").Int()
		if cap(s.buf) < n {
			s.buf = make([]byte, n)
		}
		s.buf = s.buf[:n]
		js.CopyBytesToGo(s.buf, v)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *streamBody) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.err == nil {
		s.err = errors.New("read on a closed response body")
		s.reader.Call("cancel")
	}
	s.stop()
	return nil
}
