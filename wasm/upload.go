//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall/js"
)

// blobUpload describes the multipart import form of one importFile call. The
// upload transport sends it with XMLHttpRequest and FormData, so the browser
// streams the File from disk: the file's bytes never enter Go memory (nor a
// second JS buffer), and upload progress events are available.
type blobUpload struct {
	blob       js.Value
	fileName   string
	fields     [][2]string // table_name, schema_name, infer_header
	onProgress js.Value
}

type uploadKey struct{}

// uploadTransport is the client's base transport: requests whose context
// carries a *blobUpload and that POST an import form go out through
// XMLHttpRequest; everything else through the standard js/wasm transport
// (fetch, with streamed response bodies).
type uploadTransport struct{ next http.RoundTripper }

func (t uploadTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	up, _ := req.Context().Value(uploadKey{}).(*blobUpload)
	if up == nil || req.Method != http.MethodPost || !strings.HasSuffix(strings.TrimSuffix(req.URL.Path, "/"), "/import") {
		return t.next.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close() // core's own multipart body is replaced by the FormData below
	}
	return xhr(req, up)
}

// xhr sends the import form and waits for the answer.
func xhr(req *http.Request, up *blobUpload) (*http.Response, error) {
	form := js.Global().Get("FormData").New()
	for _, f := range up.fields {
		form.Call("append", f[0], f[1])
	}
	form.Call("append", "file", up.blob, up.fileName)

	x := js.Global().Get("XMLHttpRequest").New()
	x.Call("open", req.Method, req.URL.String())
	x.Set("responseType", "arraybuffer")
	for k, vs := range req.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length", "User-Agent":
			continue // the browser sets the multipart boundary; User-Agent is its own
		}
		for _, v := range vs {
			x.Call("setRequestHeader", k, v)
		}
	}
	type outcome struct {
		resp *http.Response
		err  error
	}
	done := make(chan outcome, 1)
	var funcs []js.Func
	release := func() {
		for _, f := range funcs {
			f.Release()
		}
	}
	on := func(target js.Value, ev string, fn func(js.Value)) {
		f := js.FuncOf(func(_ js.Value, a []js.Value) any { fn(arg(a, 0)); return nil })
		funcs = append(funcs, f)
		target.Call("addEventListener", ev, f)
	}
	if is(up.onProgress, "function") {
		on(x.Get("upload"), "progress", func(e js.Value) {
			up.onProgress.Invoke(js.ValueOf(map[string]any{"phase": "upload", "loaded": e.Get("loaded").Float(), "total": e.Get("total").Float()}))
		})
	}
	on(x, "load", func(js.Value) {
		buf := js.Global().Get("Uint8Array").New(x.Get("response"))
		body := make([]byte, buf.Length())
		js.CopyBytesToGo(body, buf)
		h := http.Header{}
		for _, line := range strings.Split(x.Call("getAllResponseHeaders").String(), "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		status := x.Get("status").Int()
		done <- outcome{resp: &http.Response{
			Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
		}}
	})
	fail := func(what string) func(js.Value) {
		return func(js.Value) {
			done <- outcome{err: fmt.Errorf("net/http: XMLHttpRequest %s: %s", what, "the upload did not complete")}
		}
	}
	on(x, "error", fail("error"))
	on(x, "abort", fail("aborted"))
	on(x, "timeout", fail("timed out"))
	ctx := req.Context()
	x.Call("send", form)
	select {
	case o := <-done:
		release()
		return o.resp, o.err
	case <-ctx.Done():
		x.Call("abort")
		<-done
		release()
		return nil, ctx.Err()
	}
}

// withUpload returns ctx carrying up for the upload transport.
func withUpload(ctx context.Context, up *blobUpload) context.Context {
	return context.WithValue(ctx, uploadKey{}, up)
}
