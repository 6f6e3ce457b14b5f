//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
	url "github.com/bitkit-dev/bitkit/internal/urlx"
	"github.com/bitkit-dev/bitkit/jsfetch"
)

// argError is an invalid argument passed from JavaScript.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func argErrorf(format string, a ...any) error { return &argError{fmt.Sprintf(format, a...)} }

// promise returns a JS Promise that settles with fn's result. fn runs in its
// own goroutine, never inside the js.FuncOf callback.
func promise(fn func(ctx context.Context) (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, a []js.Value) any {
		executor.Release()
		resolve, reject := a[0], a[1]
		go func() {
			v, err := safeCall(fn)
			if err != nil {
				reject.Invoke(jsError(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// safeCall runs fn, turning a panic (a JS exception thrown by a syscall/js
// call, or a bug) into an error so that the Promise rejects instead of the
// program dying.
func safeCall(fn func(ctx context.Context) (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = argErrorf("bitkit: %s", je.Value.Get("message").String())
				return
			}
			err = fmt.Errorf("bitkit: internal error: %v", r)
		}
	}()
	return fn(context.Background())
}

// await waits for a thenable (a JS Promise) from a goroutine. Other values are
// returned as they are.
func await(v js.Value) (js.Value, error) {
	if !is(v, "object") || !is(v.Get("then"), "function") {
		return v, nil
	}
	type settled struct {
		v   js.Value
		err error
	}
	ch := make(chan settled, 1)
	var onOK, onErr js.Func
	onOK = js.FuncOf(func(_ js.Value, a []js.Value) any {
		onOK.Release()
		onErr.Release()
		ch <- settled{v: arg(a, 0)}
		return nil
	})
	onErr = js.FuncOf(func(_ js.Value, a []js.Value) any {
		onOK.Release()
		onErr.Release()
		reason := arg(a, 0)
		msg := "rejected"
		if is(reason, "object") && is(reason.Get("message"), "string") {
			msg = reason.Get("message").String()
		} else if !reason.IsUndefined() {
			msg = js.Global().Call("String", reason).String()
		}
		ch <- settled{err: &jsRejection{msg: msg, reason: reason}}
		return nil
	})
	v.Call("then", onOK, onErr)
	s := <-ch
	return s.v, s.err
}

// jsRejection is an exception thrown by a caller's callback, or the
// rejection of the Promise it returned: the API rejects with a BitkitError
// of code "callback_error" whose cause is the original value.
type jsRejection struct {
	msg    string
	reason js.Value
}

func (e *jsRejection) Error() string { return e.msg }

func arg(a []js.Value, i int) js.Value {
	if i < len(a) {
		return a[i]
	}
	return js.Undefined()
}

// jsTerms rewrites the Go names in core's messages into the JS API's
// (pairs of old and new text; none's new text holds another's old text).
var jsTerms = [][2]string{
	{"use WithAPIKey, WithToken or WithCredentials", "pass apiKey, token, or username and password to createClient"},
	{"pass credentials with WithAPIKey, WithToken or WithCredentials", "pass credentials as createClient's apiKey, token, or username and password"},
	{"the access token given with WithToken", "the token given to createClient"},
	{"or use UsernamePassword, which refreshes tokens by itself", "or pass username and password, with which the client logs in again by itself"},
}

// inJSTerms applies jsTerms. (Not a strings.Replacer: its machinery weighs
// ~20 KB in the module.)
func inJSTerms(msg string) string {
	for _, t := range jsTerms {
		msg = strings.ReplaceAll(msg, t[0], t[1])
	}
	return msg
}

// jsError converts err into a BitkitError (see bitkit.d.ts).
func jsError(err error) js.Value {
	f := map[string]any{}
	var ready *readyError
	if errors.As(err, &ready) {
		return ready.v
	}
	var rej *jsRejection
	if errors.As(err, &rej) {
		f["code"] = "callback_error"
		f["cause"] = rej.reason
		return errorClass.New("bitkit: your callback failed: "+rej.msg, js.ValueOf(f))
	}
	msg := err.Error()
	var ae *core.APIError
	var jf *core.JobFailedError
	var ue *url.Error
	var ag *argError
	var ne *jsfetch.NetworkError
	switch {
	case errors.As(err, &jf):
		f["code"] = "job_failed"
		if jf.Job != nil {
			f["job"] = toJS(jf.Job)
		}
	case errors.As(err, &ae):
		f["status"] = ae.StatusCode
		f["code"] = ae.Code
		f["sqlstate"] = ae.SQLState
		f["detail"] = ae.Detail
		f["hint"] = ae.Hint
		f["position"] = ae.Position
		f["requestId"] = ae.RequestID
		if ae.Message != "" {
			msg = ae.Message
		}
		if ae.Index != nil {
			f["index"] = *ae.Index
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		f["code"] = "canceled"
	case errors.As(err, &ag):
		f["code"] = "invalid_argument"
	case errors.As(err, &ne), errors.As(err, &ue), strings.Contains(msg, "XMLHttpRequest"):
		// core reports transport failures as "core: METHOD URL: cause" with a
		// sanitized URL; a bare *url.Error (from elsewhere) may hold a query
		// with a key, so only its scheme, host and path are named.
		f["code"] = "network_error"
		if ue != nil {
			where := "the server"
			if u, perr := url.Parse(ue.URL); perr == nil {
				where = u.Scheme + "://" + u.Host + u.Path
			}
			msg = fmt.Sprintf("bitkit: %s %s: %v", ue.Op, where, ue.Err)
		}
		msg += " (is bitd running at this endpoint, and does its --allowed-origins list this page's origin?)"
	default:
		f["code"] = "client_error"
	}
	msg = inJSTerms(strings.TrimPrefix(msg, "core: "))
	e := errorClass.New(msg, js.ValueOf(f))
	if idx, ok := f["index"]; ok {
		e.Set("index", idx)
	}
	return e
}
