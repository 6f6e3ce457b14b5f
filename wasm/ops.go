//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/jsfetch"
)

// query implements client.query(db, sql, params?, {format, timeoutMs}).
func (jc *jsClient) query(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "query: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	sql, err := reqString(a, 1, "query: the SQL text")
	if err != nil {
		return nil, err
	}
	if err := oneStatement("query", sql); err != nil {
		return nil, err
	}
	p, err := params(arg(a, 2))
	if err != nil {
		return nil, err
	}
	o := optObject(a, 3)
	objects, err := format(o)
	if err != nil {
		return nil, err
	}
	tx, err := jc.txOf(db, o, "query")
	if err != nil {
		return nil, err
	}
	ctx, stop := withSignal(ctx, o)
	defer stop()
	q := core.QueryRequest{Database: db, SQL: sql, Params: p, Timeout: timeout(o)}
	var r *core.Result
	if tx != nil {
		r, err = tx.QueryWith(ctx, q)
	} else {
		r, err = jc.c.QueryWith(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	return jsResult(r, jc.values, objects)
}

func format(o js.Value) (objects bool, err error) {
	switch f := str(o, "format"); f {
	case "", "rows":
		return false, nil
	case "objects":
		return true, nil
	default:
		return false, argErrorf("bitkit: format must be \"rows\" or \"objects\", got %q", f)
	}
}

// queryStream implements client.queryStream(db, sql, params, onRow | {onRows}, opts).
// Go sends the request (credentials, retries, the error of a refused
// request) and hands the NDJSON body, unread, to the loader's pumpStream:
// JavaScript reads its chunks, splits the lines, JSON.parses the rows and
// applies the value options (bitkit.mjs, RowDecoder), and calls onRows(rows,
// columns) per batch (the rows of a chunk, at most batchRows, default 1000)
// or onRow(row, index, columns) per row. When the callback returns a Promise
// the stream waits for it. In a Worker (the default mode of load()) the
// sink is the page's marker {__bitkitChunks: call}: the chunks then cross to
// the page as transferred ArrayBuffers and are decoded there.
func (jc *jsClient) queryStream(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "queryStream: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	sql, err := reqString(a, 1, "queryStream: the SQL text")
	if err != nil {
		return nil, err
	}
	if err := oneStatement("queryStream", sql); err != nil {
		return nil, err
	}
	p, err := params(arg(a, 2))
	if err != nil {
		return nil, err
	}
	sink := arg(a, 3)
	if !is(sink, "function") && !(is(sink, "object") && (is(sink.Get("onRows"), "function") || is(sink.Get("__bitkitChunks"), "number"))) {
		return nil, argErrorf("bitkit: queryStream: the fourth argument must be onRow(row, index, columns) or { onRows(rows, columns) }")
	}
	o := optObject(a, 4)
	objects, err := format(o)
	if err != nil {
		return nil, err
	}
	batchRows := 1000
	if is(o, "object") && is(o.Get("batchRows"), "number") {
		if batchRows = o.Get("batchRows").Int(); batchRows < 1 {
			return nil, argErrorf("bitkit: queryStream: batchRows must be a positive number of rows")
		}
	}
	tx, err := jc.txOf(db, o, "queryStream")
	if err != nil {
		return nil, err
	}
	ctx, stop := withSignal(ctx, o)
	defer stop()
	q := core.QueryRequest{Database: db, SQL: sql, Params: p, Timeout: timeout(o)}
	var body io.ReadCloser
	if tx != nil {
		body, err = tx.QueryStreamBody(ctx, q)
	} else {
		body, err = jc.c.QueryStreamBody(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	defer body.Close()
	src, ok := jsfetch.StreamReader(body)
	if !ok { // a whole-document answer, rewritten as NDJSON by core
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		src = js.Global().Get("Uint8Array").New(len(b))
		js.CopyBytesToJS(src, b)
	}
	opts := jc.values.js(objects)
	opts.Set("batchRows", batchRows)
	if is(o, "object") && is(o.Get("signal"), "object") {
		opts.Set("signal", o.Get("signal")) // no row to the callbacks after an abort
	}
	res, err := await(pumpStream.Invoke(src, sink, opts))
	if err != nil {
		return nil, err
	}
	switch {
	case !res.Get("error").IsUndefined(): // the decoder's BitkitError (error line, callback failure, …)
		return nil, &readyError{v: res.Get("error")}
	case res.Get("stopped").Truthy(): // the page's decoder ended the stream (Worker mode)
		return nil, context.Canceled
	case is(res.Get("readError"), "string"):
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("query stream: %w", err)
		}
		return nil, &jsfetch.NetworkError{Err: errors.New("reading the query stream: " + res.Get("readError").String())}
	}
	return res.Get("ok"), nil
}

// readyError is a BitkitError made in JavaScript, passed on as it is.
type readyError struct{ v js.Value }

func (e *readyError) Error() string { return e.v.Get("message").String() }

// batch implements client.batch(db, statements, {isolationLevel, readOnly, timeoutMs}).
func (jc *jsClient) batch(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "batch: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	list := arg(a, 1)
	if !js.Global().Get("Array").Call("isArray", list).Bool() || list.Length() == 0 {
		return nil, argErrorf("bitkit: batch: statements must be a non-empty array of strings or {sql, params}")
	}
	req := core.BatchRequest{Database: db}
	for i := 0; i < list.Length(); i++ {
		st := list.Index(i)
		switch {
		case is(st, "string"):
			req.Queries = append(req.Queries, core.Statement{SQL: st.String()})
		case is(st, "object") && is(st.Get("sql"), "string"):
			p, err := params(st.Get("params"))
			if err != nil {
				return nil, err
			}
			req.Queries = append(req.Queries, core.Statement{SQL: st.Get("sql").String(), Params: p})
		default:
			return nil, argErrorf("bitkit: batch: statement %d must be a string or {sql, params}", i)
		}
	}
	o := optObject(a, 2)
	if req.IsolationLevel, err = isolationLevel(o, "batch"); err != nil {
		return nil, err
	}
	req.ReadOnly, _ = optBool(o, "readOnly")
	req.Timeout = timeout(o)
	tx, err := jc.txOf(db, o, "batch")
	if err != nil {
		return nil, err
	}
	if tx != nil && (req.IsolationLevel != "" || req.ReadOnly) {
		return nil, argErrorf("bitkit: batch: isolationLevel and readOnly belong to beginTx, not to a batch inside a transaction (txId)")
	}
	ctx, stop := withSignal(ctx, o)
	defer stop()
	var results []*core.Result
	if tx != nil {
		results, err = tx.Batch(ctx, req.Queries)
	} else {
		results, err = jc.c.Batch(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	out := make([]any, len(results))
	for i, r := range results {
		v, err := jsResult(r, jc.values, false)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return js.ValueOf(out), nil
}

func (jc *jsClient) listDatabases(ctx context.Context, _ []js.Value) (any, error) {
	dbs, err := jc.c.ListDatabases(ctx)
	if err != nil {
		return nil, err
	}
	if dbs == nil {
		dbs = []core.Database{}
	}
	return toJS(dbs), nil
}

func (jc *jsClient) getDatabase(ctx context.Context, a []js.Value) (any, error) {
	name, err := reqString(a, 0, "getDatabase: the database name")
	if err != nil {
		return nil, err
	}
	db, err := jc.c.GetDatabase(ctx, name)
	if err != nil {
		return nil, err
	}
	return toJS(db), nil
}

func (jc *jsClient) createDatabase(ctx context.Context, a []js.Value) (any, error) {
	name, err := reqString(a, 0, "createDatabase: the database name")
	if err != nil {
		return nil, err
	}
	o := optObject(a, 1)
	req := core.CreateDatabaseRequest{Name: name, Account: str(o, "account")}
	if p, ok := optBool(o, "isPrivate"); ok {
		req.IsPrivate = &p
	}
	if n, ok := optNumber(o, "storageLimitBytes"); ok {
		req.StorageLimitBytes = int64(n)
	}
	db, err := jc.c.CreateDatabase(ctx, req)
	if err != nil {
		return nil, err
	}
	return toJS(db), nil
}

func (jc *jsClient) updateDatabase(ctx context.Context, a []js.Value) (any, error) {
	name, err := reqString(a, 0, "updateDatabase: the database name")
	if err != nil {
		return nil, err
	}
	o := optObject(a, 1)
	if o.IsUndefined() {
		return nil, argErrorf("bitkit: updateDatabase: give the changes as {name, isPrivate, storageLimitBytes}")
	}
	var req core.UpdateDatabaseRequest
	if n := str(o, "name"); n != "" {
		req.Name = &n
	}
	if p, ok := optBool(o, "isPrivate"); ok {
		req.IsPrivate = &p
	}
	if n, ok := optNumber(o, "storageLimitBytes"); ok {
		l := int64(n)
		req.StorageLimitBytes = &l
	}
	db, err := jc.c.UpdateDatabase(ctx, name, req)
	if err != nil {
		return nil, err
	}
	return toJS(db), nil
}

func (jc *jsClient) deleteDatabase(ctx context.Context, a []js.Value) (any, error) {
	name, err := reqString(a, 0, "deleteDatabase: the database name")
	if err != nil {
		return nil, err
	}
	return js.Undefined(), jc.c.DeleteDatabase(ctx, name)
}

// importFile implements client.importFile(db, blob, {table, schema, inferHeader, ifExists, fileName, onProgress}).
func (jc *jsClient) importFile(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "importFile: the database name")
	if err != nil {
		return nil, err
	}
	blob := arg(a, 1)
	if !is(blob, "object") || !blob.InstanceOf(js.Global().Get("Blob")) {
		return nil, argErrorf("bitkit: importFile: the file must be a File or Blob")
	}
	o := optObject(a, 2)
	table := str(o, "table")
	if table == "" {
		return nil, argErrorf("bitkit: importFile: options.table (the target table name) is required")
	}
	fileName := str(o, "fileName")
	if fileName == "" {
		fileName = str(blob, "name")
	}
	if fileName == "" {
		fileName = "upload.csv"
	}
	onProgress := optFunc(o, "onProgress")
	req := core.ImportRequest{Table: table, Schema: str(o, "schema"), InferHeader: str(o, "inferHeader"),
		IfExists: str(o, "ifExists"), FileName: fileName, Size: int64(blob.Get("size").Float()), File: &blobReader{blob: blob}}
	up := &blobUpload{blob: blob, fileName: fileName, onProgress: onProgress,
		fields: [][2]string{{"table_name", table}}}
	if req.Schema != "" {
		up.fields = append(up.fields, [2]string{"schema_name", req.Schema})
	}
	if req.InferHeader != "" {
		up.fields = append(up.fields, [2]string{"infer_header", req.InferHeader})
	}
	if req.IfExists != "" {
		up.fields = append(up.fields, [2]string{"if_exists", req.IfExists})
	}
	ctx, stop := withSignal(ctx, o)
	defer stop()
	job, err := jc.c.Import(withUpload(ctx, up), db, req, jobProgress(onProgress))
	if err != nil {
		return nil, err
	}
	return toJS(job), nil
}

// jobProgress reports job polls to onProgress as {phase: "job", job}.
func jobProgress(onProgress js.Value) func(*core.Job) {
	if !is(onProgress, "function") {
		return nil
	}
	return func(j *core.Job) {
		onProgress.Invoke(js.ValueOf(map[string]any{"phase": "job", "job": toJS(j)}))
	}
}

// blobReader reads a Blob in 1 MiB slices. The upload transport normally
// sends the Blob itself; blobReader is what core sees as ImportRequest.File
// and is read only if the form is sent by another path.
type blobReader struct {
	blob js.Value
	off  int64
	buf  []byte
}

func (r *blobReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		size := int64(r.blob.Get("size").Float())
		if r.off >= size {
			return 0, io.EOF
		}
		end := min(r.off+1<<20, size)
		ab, err := await(r.blob.Call("slice", r.off, end).Call("arrayBuffer"))
		if err != nil {
			return 0, err
		}
		u8 := js.Global().Get("Uint8Array").New(ab)
		r.buf = make([]byte, u8.Length())
		js.CopyBytesToGo(r.buf, u8)
		r.off = end
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// exportData implements client.exportData(db, {query|table, schema, format, fileName, onProgress}).
func (jc *jsClient) exportData(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "exportData: the database name")
	if err != nil {
		return nil, err
	}
	o := optObject(a, 1)
	req := core.ExportRequest{Query: str(o, "query"), Table: str(o, "table"), Schema: str(o, "schema"),
		Format: str(o, "format"), FileName: str(o, "fileName")}
	if (req.Query == "") == (req.Table == "") {
		return nil, argErrorf("bitkit: exportData: give exactly one of options.query or options.table")
	}
	ctx, stop := withSignal(ctx, o)
	defer stop()
	job, err := jc.c.Export(ctx, db, req, jobProgress(optFunc(o, "onProgress")))
	if err != nil {
		return nil, err
	}
	res := js.Global().Get("Object").New()
	res.Set("job", toJS(job))
	res.Set("url", job.DownloadURL)
	mime := map[string]string{"csv": "text/csv", "json": "application/json", "parquet": "application/vnd.apache.parquet", "xls": "application/vnd.ms-excel"}[job.ExportFormat]
	res.Set("download", method(func(ctx context.Context, a []js.Value) (any, error) {
		w := &blobWriter{parts: js.Global().Get("Array").New(), onProgress: optFunc(optObject(a, 0), "onProgress")}
		if _, err := jc.c.Download(ctx, job, w); err != nil {
			return nil, err
		}
		return js.Global().Get("Blob").New(w.parts, js.ValueOf(map[string]any{"type": mime})), nil
	}))
	return res, nil
}

// blobWriter collects a download as Uint8Array parts of a Blob, so Go holds
// only one chunk at a time.
type blobWriter struct {
	parts      js.Value
	n          int64
	onProgress js.Value
}

func (w *blobWriter) Write(p []byte) (int, error) {
	u8 := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(u8, p)
	w.parts.Call("push", u8)
	w.n += int64(len(p))
	if is(w.onProgress, "function") {
		w.onProgress.Invoke(js.ValueOf(map[string]any{"phase": "download", "loaded": float64(w.n)}))
	}
	return len(p), nil
}

func (jc *jsClient) createAPIKey(ctx context.Context, _ []js.Value) (any, error) {
	k, err := jc.c.CreateAPIKey(ctx)
	if err != nil {
		return nil, err
	}
	return js.ValueOf(map[string]any{"apiKey": k.APIKey, "username": k.Username}), nil
}

func (jc *jsClient) revokeAPIKey(ctx context.Context, a []js.Value) (any, error) {
	key, err := reqString(a, 0, "revokeApiKey: the API key")
	if err != nil {
		return nil, err
	}
	return js.Undefined(), jc.c.RevokeAPIKey(ctx, key)
}

// listAPIKeys implements client.listApiKeys(): the caller's live keys
// ({id, label, dateCreated, lastUsed, current}), never the keys themselves.
func (jc *jsClient) listAPIKeys(ctx context.Context, _ []js.Value) (any, error) {
	keys, err := jc.c.ListAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	return toJS(keys), nil
}

// revokeAPIKeyByID implements client.revokeApiKeyById(id), id as listApiKeys shows it.
func (jc *jsClient) revokeAPIKeyByID(ctx context.Context, a []js.Value) (any, error) {
	id, err := reqString(a, 0, "revokeApiKeyById: the key ID (listApiKeys shows them)")
	if err != nil {
		return nil, err
	}
	return js.Undefined(), jc.c.RevokeAPIKeyByID(ctx, id)
}

// listServiceAccounts implements client.listServiceAccounts().
func (jc *jsClient) listServiceAccounts(ctx context.Context, _ []js.Value) (any, error) {
	sas, err := jc.c.ListServiceAccounts(ctx)
	if err != nil {
		return nil, err
	}
	return toJS(sas), nil
}

func (jc *jsClient) revokeAllAPIKeys(ctx context.Context, _ []js.Value) (any, error) {
	return js.Undefined(), jc.c.RevokeAllAPIKeys(ctx)
}

func (jc *jsClient) account(ctx context.Context, _ []js.Value) (any, error) {
	acct, err := jc.c.Account(ctx)
	if err != nil {
		return nil, err
	}
	return js.ValueOf(map[string]any{"id": acct.ID, "name": acct.Name}), nil
}

func (jc *jsClient) login(ctx context.Context, _ []js.Value) (any, error) {
	return js.Undefined(), jc.c.Login(ctx)
}

// accessToken implements client.accessToken(): the access token of a
// username/password or token client (string), null with an API key or none.
func (jc *jsClient) accessToken(ctx context.Context, _ []js.Value) (any, error) {
	t, err := jc.c.AccessToken(ctx)
	if err != nil || t == "" {
		return js.Null(), err
	}
	return t, nil
}

func (jc *jsClient) logout(ctx context.Context, _ []js.Value) (any, error) {
	return js.Undefined(), jc.c.Logout(ctx)
}
