//go:build js && wasm

package main

import (
	"context"
	"strings"
	"syscall/js"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

// jsClient is one createClient() result.
type jsClient struct {
	c      *core.Client
	values valueOptions
}

// str reads an optional string property of an options object.
func str(o js.Value, name string) string {
	if !is(o, "object") {
		return ""
	}
	v := o.Get(name)
	if is(v, "string") {
		return v.String()
	}
	return ""
}

// createClient implements bitkit.createClient(opts). It does no I/O and
// answers {client} or {error: BitkitError}; bitkit.mjs turns the error into a
// throw (a panic inside a js.FuncOf callback would end the Go program).
func createClient(_ js.Value, a []js.Value) any {
	c, err := newJSClient(arg(a, 0))
	if err != nil {
		return js.ValueOf(map[string]any{"error": jsError(err)})
	}
	return js.ValueOf(map[string]any{"client": c.object()})
}

func newJSClient(o js.Value) (*jsClient, error) {
	if !o.IsUndefined() && !o.IsNull() && !is(o, "object") {
		return nil, argErrorf("bitkit: createClient takes an options object, got %s", typeOf(o))
	}
	endpoint := str(o, "endpoint")
	if endpoint == "" {
		if loc := js.Global().Get("location"); is(loc, "object") {
			endpoint = loc.Get("origin").String()
		}
	}
	opts := []core.Option{core.WithUserAgent("bitkit-wasm/" + core.Version)}
	apiKey, token, user, pass := str(o, "apiKey"), str(o, "token"), str(o, "username"), str(o, "password")
	n := 0
	for _, s := range []string{apiKey, token, user} {
		if s != "" {
			n++
		}
	}
	fail := func(err error) (*jsClient, error) { return nil, err }
	if n > 1 {
		return fail(argErrorf("bitkit: createClient: give at most one of apiKey, token or username+password (none: public databases only)"))
	}
	switch {
	case apiKey != "":
		opts = append(opts, core.WithAPIKey(apiKey))
	case token != "":
		opts = append(opts, core.WithToken(token))
	case user != "":
		if pass == "" {
			return fail(argErrorf("bitkit: createClient: username %q needs a password", user))
		}
		var aopts []core.AuthOption
		switch mode := str(o, "tokenCache"); mode {
		case "", "none":
		case "session":
			aopts = append(aopts, core.WithTokenCache(storageCache{name: "sessionStorage"}))
		case "local":
			aopts = append(aopts, core.WithTokenCache(storageCache{name: "localStorage"}))
		default:
			return fail(argErrorf("bitkit: createClient: tokenCache must be \"session\", \"local\" or \"none\", got %q", mode))
		}
		opts = append(opts, core.WithCredentials(core.UsernamePassword(user, pass, aopts...)))
	}
	if acct := str(o, "account"); acct != "" {
		opts = append(opts, core.WithAccount(acct))
	}
	vo, err := readValueOptions(o)
	if err != nil {
		return fail(err)
	}
	c, err := core.NewClient(endpoint, opts...)
	if err != nil {
		return fail(argErrorf("bitkit: createClient: %s", strings.TrimPrefix(err.Error(), "core: ")))
	}
	return &jsClient{c: c, values: vo}, nil
}

// numberModes are the choices of createClient's int8 and numeric options.
var numberModes = map[string]bool{"bigint": true, "string": true, "number-if-safe": true}

// readValueOptions reads int8, numeric (default "number-if-safe"; int64 is
// the older name of int8), timestamps ("string" default, or "date") and
// types (per-type parsers keyed by type OID or name).
func readValueOptions(o js.Value) (valueOptions, error) {
	vo := valueOptions{int8: "number-if-safe", numeric: "number-if-safe", types: js.Undefined()}
	for _, opt := range []struct {
		name string
		dst  *string
	}{{"int64", &vo.int8}, {"int8", &vo.int8}, {"numeric", &vo.numeric}} {
		m := str(o, opt.name)
		if m == "" {
			continue
		}
		if !numberModes[m] || (opt.name == "numeric" && m == "bigint") {
			allowed := `"bigint", "string" or "number-if-safe"`
			if opt.name == "numeric" {
				allowed = `"string" or "number-if-safe"`
			}
			return vo, argErrorf("bitkit: createClient: %s must be %s, got %q", opt.name, allowed, m)
		}
		*opt.dst = m
	}
	switch m := str(o, "timestamps"); m {
	case "", "string":
	case "date":
		vo.dates = true
	default:
		return vo, argErrorf("bitkit: createClient: timestamps must be \"string\" or \"date\", got %q", m)
	}
	if is(o, "object") {
		if t := o.Get("types"); !t.IsUndefined() && !t.IsNull() {
			if !is(t, "object") {
				return vo, argErrorf("bitkit: createClient: types must be an object of parsers keyed by type OID or name, such as { 1700: Number, jsonb: (v) => v }")
			}
			vo.types = t
		}
	}
	return vo, nil
}

// method wraps fn as a JS function returning a Promise.
func method(fn func(ctx context.Context, a []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, a []js.Value) any {
		return promise(func(ctx context.Context) (any, error) { return fn(ctx, a) })
	})
}

// reqString reads a required string argument.
func reqString(a []js.Value, i int, what string) (string, error) {
	v := arg(a, i)
	if !is(v, "string") || strings.TrimSpace(v.String()) == "" {
		return "", argErrorf("bitkit: %s must be a non-empty string", what)
	}
	return v.String(), nil
}

// optObject returns argument i when it is an object, else undefined.
func optObject(a []js.Value, i int) js.Value {
	v := arg(a, i)
	if is(v, "object") {
		return v
	}
	return js.Undefined()
}

func optNumber(o js.Value, name string) (float64, bool) {
	if !is(o, "object") {
		return 0, false
	}
	v := o.Get(name)
	if is(v, "number") {
		return v.Float(), true
	}
	if is(v, "bigint") {
		return js.Global().Call("Number", v).Float(), true
	}
	return 0, false
}

func optBool(o js.Value, name string) (bool, bool) {
	if !is(o, "object") {
		return false, false
	}
	v := o.Get(name)
	if is(v, "boolean") {
		return v.Bool(), true
	}
	return false, false
}

func optFunc(o js.Value, name string) js.Value {
	if !is(o, "object") {
		return js.Undefined()
	}
	v := o.Get(name)
	if is(v, "function") {
		return v
	}
	return js.Undefined()
}

func timeout(o js.Value) time.Duration {
	ms, _ := optNumber(o, "timeoutMs")
	return time.Duration(ms * float64(time.Millisecond))
}

// object builds the JS client object.
func (jc *jsClient) object() js.Value {
	o := js.Global().Get("Object").New()
	o.Set("endpoint", jc.c.Endpoint())
	for name, fn := range map[string]func(context.Context, []js.Value) (any, error){
		"query":               jc.query,
		"queryStream":         jc.queryStream,
		"batch":               jc.batch,
		"listDatabases":       jc.listDatabases,
		"getDatabase":         jc.getDatabase,
		"createDatabase":      jc.createDatabase,
		"updateDatabase":      jc.updateDatabase,
		"deleteDatabase":      jc.deleteDatabase,
		"listCollaborators":   jc.listCollaborators,
		"shareDatabase":       jc.shareDatabase,
		"removeCollaborator":  jc.removeCollaborator,
		"importFile":          jc.importFile,
		"exportData":          jc.exportData,
		"createApiKey":        jc.createAPIKey,
		"revokeApiKey":        jc.revokeAPIKey,
		"revokeAllApiKeys":    jc.revokeAllAPIKeys,
		"listApiKeys":         jc.listAPIKeys,
		"revokeApiKeyById":    jc.revokeAPIKeyByID,
		"listServiceAccounts": jc.listServiceAccounts,
		"account":             jc.account,
		"login":               jc.login,
		"logout":              jc.logout,
		"accessToken":         jc.accessToken,
		"beginTx":             jc.beginTx,
		"commitTx":            jc.commitTx,
		"rollbackTx":          jc.rollbackTx,
	} {
		o.Set(name, method(fn))
	}
	return o
}

// withSignal derives a context that ends when options.signal (an
// AbortSignal) aborts; the request in flight is then aborted and the Promise
// rejects with code "canceled". Call the returned stop when done.
func withSignal(ctx context.Context, o js.Value) (context.Context, func()) {
	if !is(o, "object") {
		return ctx, func() {}
	}
	sig := o.Get("signal")
	if !is(sig, "object") || !sig.InstanceOf(js.Global().Get("AbortSignal")) {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	if sig.Get("aborted").Bool() {
		cancel()
		return ctx, cancel
	}
	onAbort := js.FuncOf(func(js.Value, []js.Value) any { cancel(); return nil })
	sig.Call("addEventListener", "abort", onAbort)
	return ctx, func() {
		sig.Call("removeEventListener", "abort", onAbort)
		onAbort.Release()
		cancel()
	}
}
