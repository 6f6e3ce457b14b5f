//go:build js

package core

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"syscall/js"
)

// testServer is a Node.js HTTP server on loopback that serves a Go handler,
// so that under js/wasm the client's fetch transport (jsfetch, set as
// DefaultFetcher by fetch_js_test.go) talks real HTTP to the test handlers:
// Go's in-process fake network, which httptest uses under js, is out of
// fetch's reach.
type testServer struct {
	URL string
	srv js.Value
	fn  js.Func
}

// listenJS creates the Node server: it collects each request body and calls
// handle(method, url, rawHeaders, body, res).
var listenJS = js.Global().Get("Function").New("http", "handle", `
	return new Promise((resolve, reject) => {
		const srv = http.createServer((req, res) => {
			const chunks = [];
			req.on('data', (c) => chunks.push(c));
			req.on('end', () => handle(req.method, req.url, req.rawHeaders, new Uint8Array(Buffer.concat(chunks)), res));
		});
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => resolve(srv));
	});`)

func startServer(h http.Handler) *testServer {
	s := &testServer{}
	s.fn = js.FuncOf(func(_ js.Value, a []js.Value) any {
		method, url, raw, bodyV, res := a[0].String(), a[1].String(), a[2], a[3], a[4]
		body := make([]byte, bodyV.Get("byteLength").Int())
		js.CopyBytesToGo(body, bodyV)
		ctx, cancel := context.WithCancel(context.Background())
		res.Call("on", "close", js.FuncOf(func(js.Value, []js.Value) any { cancel(); return nil }))
		go func() {
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1"+url, bytes.NewReader(body))
			if err != nil {
				res.Set("statusCode", 400)
				res.Call("end")
				return
			}
			for i := 0; i+1 < raw.Length(); i += 2 {
				req.Header.Add(raw.Index(i).String(), raw.Index(i+1).String())
			}
			req.ContentLength = int64(len(body))
			req.Host = "127.0.0.1"
			w := &jsResponseWriter{res: res, header: http.Header{}}
			h.ServeHTTP(w, req)
			w.WriteHeader(http.StatusOK)
			res.Call("end")
		}()
		return nil
	})
	p := listenJS.Invoke(js.Global().Call("require", "http"), s.fn)
	done := make(chan js.Value, 1)
	then := js.FuncOf(func(_ js.Value, a []js.Value) any { done <- a[0]; return nil })
	defer then.Release()
	p.Call("then", then)
	s.srv = <-done
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.srv.Call("address").Get("port").Int())
	return s
}

// Close stops the server and ends its open connections.
func (s *testServer) Close() {
	s.srv.Call("close")
	s.srv.Call("closeAllConnections")
}

type jsResponseWriter struct {
	res    js.Value
	header http.Header
	wrote  bool
}

func (w *jsResponseWriter) Header() http.Header { return w.header }

func (w *jsResponseWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	for k, vs := range w.header {
		arr := js.Global().Get("Array").New()
		for _, v := range vs {
			arr.Call("push", v)
		}
		w.res.Call("setHeader", k, arr)
	}
	w.res.Set("statusCode", code)
	w.res.Call("flushHeaders")
}

func (w *jsResponseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if len(p) == 0 {
		return 0, nil
	}
	u := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(u, p)
	if w.res.Get("destroyed").Bool() {
		return 0, errors.New("the client went away")
	}
	if !w.res.Call("write", u).Bool() {
		// Back-pressure: wait for Node to drain (this also lets the event
		// loop, and so the client, run).
		ch := make(chan struct{}, 2)
		fn := js.FuncOf(func(js.Value, []js.Value) any { ch <- struct{}{}; return nil })
		w.res.Call("once", "drain", fn)
		w.res.Call("once", "close", fn)
		<-ch
		w.res.Call("off", "drain", fn)
		w.res.Call("off", "close", fn)
		fn.Release()
	}
	return len(p), nil
}

func (w *jsResponseWriter) Flush() { w.WriteHeader(http.StatusOK) }
