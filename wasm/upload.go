//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
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
type uploadFetcher struct{ next core.Fetcher }

func (t uploadFetcher) Fetch(ctx context.Context, req *core.Request) (*core.Response, error) {
	up, _ := ctx.Value(uploadKey{}).(*blobUpload)
	if up == nil || req.Method != "POST" || !strings.HasSuffix(strings.TrimSuffix(urlPath(req.URL), "/"), "/import") {
		return t.next.Fetch(ctx, req)
	}
	if c, ok := req.Body.(io.Closer); ok {
		c.Close() // core's own multipart body is replaced by the FormData below
	}
	return xhr(ctx, req, up)
}

// urlPath is the path of an absolute URL (without query).
func urlPath(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if j := strings.IndexByte(u, '/'); j >= 0 {
			u = u[j:]
		} else {
			u = "/"
		}
	}
	u, _, _ = strings.Cut(u, "?")
	return u
}

// xhr sends the import form and waits for the answer.
func xhr(ctx context.Context, req *core.Request, up *blobUpload) (*core.Response, error) {
	form := js.Global().Get("FormData").New()
	for _, f := range up.fields {
		form.Call("append", f[0], f[1])
	}
	form.Call("append", "file", up.blob, up.fileName)

	x := js.Global().Get("XMLHttpRequest").New()
	x.Call("open", req.Method, req.URL)
	x.Set("responseType", "arraybuffer")
	for k, vs := range req.Header {
		switch core.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length", "User-Agent":
			continue // the browser sets the multipart boundary; User-Agent is its own
		}
		for _, v := range vs {
			x.Call("setRequestHeader", k, v)
		}
	}
	type outcome struct {
		resp *core.Response
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
		h := core.Header{}
		for _, line := range strings.Split(x.Call("getAllResponseHeaders").String(), "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		status := x.Get("status").Int()
		done <- outcome{resp: &core.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}}
	})
	fail := func(what string) func(js.Value) {
		return func(js.Value) {
			done <- outcome{err: fmt.Errorf("XMLHttpRequest %s: the upload did not complete", what)}
		}
	}
	on(x, "error", fail("error"))
	on(x, "abort", fail("aborted"))
	on(x, "timeout", fail("timed out"))
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
