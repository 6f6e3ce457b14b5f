// bitkit.mjs: ES-module loader of the bitkit browser client (bitkit.wasm).
//
//   import { load } from "./bitkit.mjs";
//   const bitkit = await load();                       // fetches bitkit.wasm next to this file
//   const c = bitkit.createClient({ endpoint, apiKey });
//   const r = await c.query("me/db", "select 1::int8 as n"); // r.rows[0][0] === 1 (int8: "number-if-safe")
//
// In a page, load() runs the Go instance in a dedicated Web Worker (this module,
// started again as a module Worker named "bitkit") and the client methods post
// messages to it; load({ worker: false }) runs it on the page's main thread.
// Types: bitkit.d.ts (bitkit.d.mts in the npm package). The Go side lives in wasm/*.go.

/** Every rejection of the API is a BitkitError (fields: status, code, sqlstate, detail, hint, position, requestId, cause). */
export class BitkitError extends Error {
  constructor(message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = "BitkitError";
    this.status = fields.status ?? 0;
    this.code = fields.code ?? "";
    this.sqlstate = fields.sqlstate ?? "";
    this.detail = fields.detail ?? "";
    this.hint = fields.hint ?? "";
    this.position = fields.position ?? 0;
    this.requestId = fields.requestId ?? "";
    if (fields.job) this.job = fields.job;
  }
}

// convertRows applies a result's value options to rows parsed from JSON.
// int8 and numeric values arrive as strings of their exact digits (also
// inside arrays): columns in spec.bigint become BigInt, those in spec.safe
// become numbers where the number prints back as the same digits (else they
// stay strings), the rest stay strings. spec.date columns become Date
// objects (a timestamp without zone is taken as UTC); spec.parse holds
// [column, parser] pairs of the client's types option, called on the
// non-null values as sent (int8 and numeric as digit strings) instead of
// the conversions above. With spec.objects each row becomes {column name: value}.
function convertRows(rows, spec) {
  const each = (cols, f) => {
    if (!cols.length) return;
    const g = (v) => (v === null ? null : Array.isArray(v) ? v.map(g) : f(v));
    for (const r of rows) for (const c of cols) r[c] = g(r[c]);
  };
  each(spec.bigint, BigInt);
  each(spec.safe, (v) => {
    const n = Number(v);
    return Number.isFinite(n) && String(n) === v ? n : v;
  });
  each(spec.date, (v) => new Date(/[zZ]|[+-]\d\d(:?\d\d)?$/.test(v) || !v.includes("T") ? v : v + "Z"));
  for (const [c, parse] of spec.parse) for (const r of rows) if (r[c] !== null) r[c] = parse(r[c]);
  if (!spec.objects) return rows;
  const names = spec.names;
  return rows.map((r) => {
    const o = {};
    for (let i = 0; i < names.length; i++) o[names[i]] = r[i];
    return o;
  });
}

// decodeRows parses the rows Go wrote as JSON text (query, batch), int8
// and numeric values as strings of their digits, and converts them for the
// columns ({name, type, typeOid}) and value options (see rowSpec).
function decodeRows(text, cols, opts) {
  return convertRows(JSON.parse(text), rowSpec(cols, opts, opts.objects));
}

// rowSpec builds convertRows' spec for a result's columns ({name, type,
// typeOid}) from a client's value options {int8, numeric, dates, types}
// (the same rules as the Go side's kinds in values.go); spec.exact[i] says
// that column i's numbers must be read as strings of their exact digits.
const INT8_OIDS = [20, 1016], NUMERIC_OIDS = [1700, 1231], TIME_OIDS = [1082, 1114, 1184, 1182, 1115, 1185];
function rowSpec(cols, vo, objects) {
  const spec = { bigint: [], safe: [], date: [], parse: [], names: cols.map((c) => c.name), objects: !!objects, exact: [] };
  const types = vo.types && typeof vo.types === "object" ? vo.types : null;
  cols.forEach((c, i) => {
    const mode = INT8_OIDS.includes(c.typeOid) ? vo.int8 : NUMERIC_OIDS.includes(c.typeOid) ? vo.numeric : "";
    spec.exact[i] = !!mode;
    let p;
    if (types) for (const k of [String(c.typeOid), String(c.type).toLowerCase()]) if (typeof types[k] === "function") { p = types[k]; break; }
    if (p) spec.parse.push([i, p]);
    else if (mode === "bigint" && INT8_OIDS.includes(c.typeOid)) spec.bigint.push(i);
    else if (mode === "number-if-safe") spec.safe.push(i);
    else if (vo.dates && TIME_OIDS.includes(c.typeOid)) spec.date.push(i);
  });
  spec.anyExact = spec.exact.some((x) => x);
  return spec;
}

// quoteExact rewrites NDJSON row lines so that the numbers of the columns
// marked in exact (also inside their arrays) become JSON strings of their
// digits, which JSON.parse then keeps exactly. Only lines that are arrays
// are touched; strings are skipped whole.
function quoteExact(text, exact) {
  let out = "", last = 0, depth = 0, col = 0, arr = text.charCodeAt(0) === 91;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) { // a string: jump to its closing quote
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return out + text.slice(last); // malformed: JSON.parse reports it
        let b = i - 1;
        while (text.charCodeAt(b) === 92) b--;
        if ((i - 1 - b) % 2 === 0) break;
      }
    } else if (c === 91 || c === 123) {
      if (++depth === 1) col = 0;
    } else if (c === 93 || c === 125) {
      depth--;
    } else if (c === 44) {
      if (depth === 1) col++;
    } else if (c === 10) {
      depth = 0;
      arr = text.charCodeAt(i + 1) === 91;
    } else if (arr && depth > 0 && exact[col] && (c === 45 || (c >= 48 && c <= 57))) {
      let j = i + 1;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (!((d >= 48 && d <= 57) || d === 46 || d === 101 || d === 69 || d === 43 || d === 45)) break;
      }
      out += text.slice(last, i) + '"' + text.slice(i, j) + '"';
      last = j;
      i = j - 1;
    }
  }
  return out + text.slice(last);
}

// streamError is the BitkitError of an error line of the stream (the Go
// client's streamError and jsError, in JavaScript).
function streamError(m) {
  if (m.error && typeof m.error === "object") m = m.error; // bitd's {"error": {"error": "<message>", …}}
  const s = (k) => (typeof m[k] === "string" ? m[k] : "");
  const n = (k) => (typeof m[k] === "number" ? Math.trunc(m[k]) : undefined);
  const f = { code: s("code"), sqlstate: s("sqlstate"), detail: s("detail"), hint: s("hint"), position: n("position") ?? 0, requestId: s("request_id") };
  let status = n("status") ?? 0;
  if (!status) {
    if (f.code === "query_timeout") status = 408;
    else if (["result_too_large", "body_too_large", "too_large"].includes(f.code)) status = 413;
    else if (f.code === "database_busy" || f.code === "database_unavailable") status = 503;
    else status = f.sqlstate ? 400 : 500;
  }
  f.status = status;
  if (n("index") !== undefined) f.index = n("index");
  const e = new BitkitError(s("error") || s("message") || "the query failed while streaming", f);
  if (f.index !== undefined) e.index = f.index;
  return e;
}

const streamFail = (msg) => new BitkitError(`query stream: ${msg}`, { code: "client_error" });

function callbackError(e) {
  const msg = e && typeof e === "object" && typeof e.message === "string" ? e.message : String(e);
  return new BitkitError(`bitkit: your callback failed: ${msg}`, { code: "callback_error", cause: e });
}

// RowDecoder decodes an NDJSON query stream chunk by chunk (the header line
// with the columns, one JSON array per row, a trailer with the row count or
// an error) and hands the rows to sink: onRow(row, index, columns) or
// {onRows(rows, columns)}, in batches of the rows of a chunk, at most
// opts.batchRows. push returns a Promise when a callback returned one.
class RowDecoder {
  constructor(sink, opts) {
    this.sink = sink;
    this.opts = opts;
    // An AbortSignal (opts.signal) that fires while rows are handed to the
    // callbacks ends the call with code "canceled", even when the whole
    // answer is read already: no row reaches the callbacks after it.
    this.signal = opts.signal ?? null;
    this.text = new TextDecoder();
    this.rest = "";
    this.cols = null;
    this.rows = 0;
    this.done = false;
    this.rowCount = -1;
  }

  async push(bytes) {
    this.checkAbort();
    let t = this.rest + this.text.decode(bytes, { stream: true });
    const cut = t.lastIndexOf("\n");
    if (cut < 0) { this.rest = t; return; }
    this.rest = t.slice(cut + 1);
    t = t.slice(0, cut);
    if (!this.cols) {
      const nl = t.indexOf("\n");
      this.header(nl < 0 ? t : t.slice(0, nl));
      if (nl < 0) return;
      t = t.slice(nl + 1);
    }
    await this.lines(t);
  }

  header(line) {
    let m;
    try { m = JSON.parse(line); } catch (e) { throw streamFail(`malformed line after 0 rows: ${e.message}`); }
    if (!m || typeof m !== "object" || Array.isArray(m)) throw streamFail("the first line is not a header object");
    if ("error" in m) { this.done = true; throw streamError(m); }
    if (!("columns" in m)) throw streamFail("the header line has no columns");
    if (!Array.isArray(m.columns ?? [])) throw streamFail("bad columns in the header");
    if (typeof m.type === "string" && m.type !== "header") throw streamFail(`the first line has type "${m.type}", want header`);
    this.cols = (m.columns ?? []).map((c) => ({ name: String(c?.name ?? ""), type: String(c?.type ?? ""), typeOid: Number(c?.type_oid ?? 0) }));
    this.spec = rowSpec(this.cols, this.opts, this.opts.objects);
  }

  // lines decodes complete lines: one JSON.parse for all of them.
  async lines(t) {
    if (!t.trim()) return;
    if (this.done) throw streamFail("data after the trailer");
    if (this.spec.anyExact) t = quoteExact(t, this.spec.exact);
    let vals;
    try {
      vals = JSON.parse("[" + t.replaceAll("\n", ",") + "]");
    } catch {
      vals = [];
      for (const l of t.split("\n")) {
        if (!l.trim()) continue;
        try { vals.push(JSON.parse(l)); } catch (e) { vals.push({ __bad: e.message }); break; }
      }
    }
    const rows = [];
    let fail = null;
    for (const v of vals) {
      if (this.done) { fail = streamFail("data after the trailer"); break; }
      let row = null;
      if (Array.isArray(v)) row = v;
      else if (v && typeof v === "object") {
        if (v.__bad !== undefined) { fail = streamFail(`malformed line after ${this.rows + rows.length} rows: ${v.__bad}`); break; }
        const typ = typeof v.type === "string" ? v.type : "";
        if ("error" in v || typ === "error") { this.done = true; fail = streamError(v); break; }
        if (Array.isArray(v.row)) row = v.row;
        else if (Array.isArray(v.values) && typ === "row") row = v.values;
        else if (typ && typ !== "trailer") { fail = streamFail(`unexpected line type "${typ}" after ${this.rows + rows.length} rows`); break; }
        else {
          this.done = true;
          if (Number.isInteger(Number(v.row_count)) && v.row_count !== null) this.rowCount = Number(v.row_count);
          continue;
        }
      } else { fail = streamFail(`${v === null ? "null" : "unexpected " + typeof v} line after ${this.rows + rows.length} rows`); break; }
      if (this.cols.length && row.length !== this.cols.length) {
        fail = streamFail(`row ${this.rows + rows.length} has ${row.length} values for ${this.cols.length} columns`);
        break;
      }
      rows.push(row);
    }
    if (rows.length) await this.deliver(convertRows(rows, this.spec));
    if (fail) throw fail;
  }

  async deliver(rows) {
    const size = this.opts.batchRows || 1000;
    for (let i = 0; i < rows.length; i += size) {
      this.checkAbort();
      const batch = i === 0 && rows.length <= size ? rows : rows.slice(i, i + size);
      const start = this.rows;
      this.rows += batch.length;
      try {
        const r = typeof this.sink === "function" ? eachRow(batch, this.sink, start, this.cols) : this.sink.onRows(batch, this.cols);
        if (r && typeof r.then === "function") await r;
      } catch (e) {
        throw callbackError(e);
      }
    }
  }

  // finish checks the end of the stream and returns {rowCount, columns}.
  checkAbort() {
    if (this.signal?.aborted) throw new BitkitError("bitkit: queryStream: aborted (its AbortSignal fired)", { code: "canceled" });
  }

  finish() {
    this.checkAbort();
    const tail = this.rest + this.text.decode();
    if (tail.trim()) throw this.cols ? streamFail(`malformed line after ${this.rows} rows: the last line has no newline`) : streamFail("malformed line after 0 rows");
    if (!this.done) throw streamFail(`ended after ${this.rows} rows without its trailer; the connection was cut or the server stopped`);
    return { rowCount: this.rowCount >= 0 ? this.rowCount : this.rows, columns: this.cols };
  }
}

const readFailure = (e) => (e && typeof e === "object" && typeof e.message === "string" ? `${e.name || "Error"}: ${e.message}` : String(e));

// pumpStream reads an NDJSON query stream (a ReadableStreamDefaultReader of
// the fetch Go made, or the bytes of a whole answer) for the Go side's
// queryStream: into a RowDecoder calling the caller's sink, or, in the
// Worker, as chunks posted to the page (sink {__bitkitChunks: call}). It
// settles with {ok: result} | {error: BitkitError} | {readError: message} |
// {stopped: true}, never rejects.
async function pumpStream(src, sink, opts) {
  if (isBitkitWorker && sink && typeof sink === "object" && typeof sink.__bitkitChunks === "number") return pumpChunks(src, sink.__bitkitChunks);
  const dec = new RowDecoder(sink, opts);
  try {
    if (src instanceof Uint8Array) await dec.push(src);
    else {
      for (;;) {
        let r;
        try { r = await src.read(); } catch (e) { return { readError: readFailure(e) }; }
        if (r.done) break;
        await dec.push(r.value);
      }
    }
    return { ok: dec.finish() };
  } catch (e) {
    if (!(src instanceof Uint8Array)) src.cancel().catch(() => {});
    return { error: e instanceof BitkitError ? e : callbackError(e) };
  }
}

// eachRow calls onRow(row, index, columns) for each row of a batch; when
// onRow returns a Promise the rest waits for it (and so does the stream).
function eachRow(rows, onRow, start, columns) {
  for (let i = 0; i < rows.length; i++) {
    const r = onRow(rows[i], start + i, columns);
    if (r && typeof r.then === "function") return r.then(() => eachRow(rows.slice(i + 1), onRow, start + i + 1, columns));
  }
  return undefined;
}

// streamRows is client.stream(db, sql, params, opts): an async iterable of
// the rows of queryStream, fed batch by batch; the stream waits while the
// consumer is behind, and leaving the loop early (break, throw) aborts it.
function streamRows(client, db, sql, params, opts = {}) {
  return {
    [Symbol.asyncIterator]() {
      const batches = [];
      let cur = [], i = 0, done = false, failure = null, wake = null, resume = null;
      const ac = new AbortController();
      if (opts.signal) {
        if (opts.signal.aborted) ac.abort(opts.signal.reason);
        else opts.signal.addEventListener("abort", () => ac.abort(opts.signal.reason), { once: true });
      }
      let closed = false;
      const onRows = (rows) => {
        if (closed) return undefined; // after return(): let the aborted stream end
        batches.push(rows);
        if (wake) wake();
        return new Promise((ok) => { resume = ok; });
      };
      const finished = client.queryStream(db, sql, params, { onRows }, { ...opts, signal: ac.signal }).then(
        () => { done = true; if (wake) wake(); },
        (e) => { failure = e; done = true; if (wake) wake(); });
      return {
        async next() {
          for (;;) {
            if (i < cur.length) return { value: cur[i++], done: false };
            if (batches.length) { cur = batches.shift(); i = 0; continue; }
            if (resume) { const r = resume; resume = null; r(); }
            if (done) {
              if (failure) throw failure;
              return { value: undefined, done: true };
            }
            await new Promise((ok) => { wake = ok; });
            wake = null;
          }
        },
        async return() {
          closed = true;
          if (!done) ac.abort();
          if (resume) resume();
          await finished;
          return { value: undefined, done: true };
        },
      };
    },
  };
}

// ---- Interactive transactions: client.transaction(db, fn, opts), built on
// the Go side's beginTx, commitTx, rollbackTx and the txId option of query,
// queryStream and batch, so that fn runs on the page in either mode.

const RETRYABLE = ["40001", "40P01"]; // serialization failure, deadlock

// txHandle is the tx of client.transaction: the client's statement calls
// bound to the database and the transaction. After the transaction ends its
// calls reject with code "transaction_done".
function txHandle(client, db, txId) {
  let done = false;
  const o = (opts) => {
    if (done) throw new BitkitError("bitkit: the transaction has already been committed or rolled back; run statements inside the function given to transaction()", { code: "transaction_done" });
    return { ...(opts && typeof opts === "object" ? opts : {}), txId };
  };
  const tx = {
    id: txId,
    database: db,
    async query(sql, params, opts) { return client.query(db, sql, params, o(opts)); },
    async exec(sql, params, opts) { return (await client.query(db, sql, params, o(opts))).rowCount; },
    async batch(statements, opts) { return client.batch(db, statements, o(opts)); },
    async queryStream(sql, params, sink, opts) { return client.queryStream(db, sql, params, sink, o(opts)); },
    stream(sql, params, opts) { return streamRows(client, db, sql, params, o(opts)); },
  };
  return [tx, () => { done = true; }];
}

// runTransaction is client.transaction(db, fn, opts): it begins a
// transaction, awaits fn(tx), commits when fn resolves (the transaction's
// result is fn's) and rolls back when fn throws (rethrowing what fn threw).
// With opts.maxRetries it runs fn again in a new transaction after a
// serialization failure or deadlock (SQLSTATE 40001, 40P01), in fn or at commit.
async function runTransaction(client, db, fn, opts) {
  const fail = (m) => new BitkitError(`bitkit: transaction: ${m}`, { code: "invalid_argument" });
  if (typeof fn !== "function") throw fail("the second argument must be a function (tx) => …, usually async");
  if (opts !== undefined && (opts === null || typeof opts !== "object")) throw fail("the options must be an object");
  const { maxRetries = 0, signal, isolationLevel, readOnly, deferrable, idleTimeoutMs } = opts ?? {};
  if (!Number.isInteger(maxRetries) || maxRetries < 0) throw fail("maxRetries must be a whole number ≥ 0");
  const begin = { isolationLevel, readOnly, deferrable, idleTimeoutMs, signal };
  for (let attempt = 0; ; attempt++) {
    try {
      const { txId } = await client.beginTx(db, begin);
      const [tx, end] = txHandle(client, db, txId);
      let value;
      try {
        value = await fn(tx);
      } catch (e) {
        end();
        await client.rollbackTx(txId).catch(() => {}); // the server rolls back at the idle timeout anyway
        throw e;
      }
      end();
      await client.commitTx(txId);
      return value;
    } catch (e) {
      if (attempt >= maxRetries || !(e instanceof BitkitError && RETRYABLE.includes(e.sqlstate)) || signal?.aborted) throw e;
      // A short, growing, jittered pause lets the conflicting transaction finish.
      await new Promise((ok) => setTimeout(ok, Math.min(1000, 10 * 2 ** attempt) * (0.5 + Math.random())));
    }
  }
}

let loading = null;

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = String(url);
    s.onload = resolve;
    s.onerror = () => reject(new BitkitError(`bitkit: could not load ${url}: check wasmExecURL`, { code: "load_failed" }));
    document.head.append(s);
  });
}

// ---- Worker mode: the Go instance runs in a dedicated Web Worker (this same
// module, started with the name "bitkit"), and the page talks to it through
// messages. Functions cannot cross: callbacks (onProgress) travel as ids and
// are called back on the page; AbortSignals as ids too. A queryStream's
// NDJSON answer crosses as its raw chunks (pumpChunks, transferred, at most
// CHUNK_WINDOW ahead), and the page decodes them and calls onRow/onRows.

const isBitkitWorker = typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope && globalThis.name === "bitkit";

// errorFields is what crosses for a BitkitError.
function errorFields(e) {
  if (!(e instanceof Error)) return { message: String(e), fields: { code: "client_error" } };
  const f = {};
  for (const k of ["status", "code", "sqlstate", "detail", "hint", "position", "requestId", "index", "job"]) if (e[k] !== undefined) f[k] = e[k];
  return { message: e.message, fields: f };
}

// chunkPumps: the Worker's streams whose chunks go to the page, by call id.
const chunkPumps = new Map();
const CHUNK_WINDOW = 8; // chunks posted to the page and not yet decoded there

// pumpChunks posts the chunks of a query stream to the page (transferred,
// not copied), at most CHUNK_WINDOW ahead of the page's decoder, which
// acknowledges each one ({t: "chunkack", call, stop}).
async function pumpChunks(src, call) {
  const st = { inflight: 0, stopped: false, wake: null };
  chunkPumps.set(call, st);
  const send = (u8) => {
    st.inflight++;
    const whole = u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength;
    const buf = whole ? u8.buffer : u8.slice().buffer;
    globalThis.postMessage({ t: "chunk", call, buf }, [buf]);
  };
  try {
    if (src instanceof Uint8Array) {
      send(src);
      return { ok: null };
    }
    st.cancel = () => src.cancel().catch(() => {});
    for (;;) {
      while (st.inflight >= CHUNK_WINDOW && !st.stopped) await new Promise((ok) => { st.wake = ok; });
      if (st.stopped) return { stopped: true };
      let r;
      try { r = await src.read(); } catch (e) { return st.stopped ? { stopped: true } : { readError: readFailure(e) }; }
      if (r.done) return st.stopped ? { stopped: true } : { ok: null };
      send(r.value);
    }
  } finally {
    chunkPumps.delete(call);
  }
}

if (isBitkitWorker) {
  const clients = new Map(), signals = new Map(), pendingCb = new Map(), handles = new Map();
  let ns = null, seq = 0;
  const post = (m) => globalThis.postMessage(m);
  // revive turns the page's placeholders back into callbacks and signals.
  const revive = (v, call) => {
    if (v && typeof v === "object" && !(v instanceof Blob) && !ArrayBuffer.isView(v) && !(v instanceof Date)) {
      if (v.__bitkitCb !== undefined) {
        const cb = v.__bitkitCb;
        return (...args) => new Promise((ok, fail) => {
          const id = ++seq;
          pendingCb.set(id, { ok, fail });
          post({ t: "cb", call, cb, id, args });
        });
      }
      if (v.__bitkitChunks !== undefined) return { __bitkitChunks: call };
      if (v.__bitkitSignal !== undefined) {
        const ac = new AbortController();
        signals.set(v.__bitkitSignal, ac);
        if (v.aborted) ac.abort();
        return ac.signal;
      }
      if (Array.isArray(v)) return v.map((x) => revive(x, call));
      const o = {};
      for (const [k, x] of Object.entries(v)) o[k] = revive(x, call);
      return o;
    }
    return v;
  };
  globalThis.onmessage = async (ev) => {
    const m = ev.data;
    try {
      if (m.t === "load") {
        ns = await load(m.opts);
        // The page's client proxies answer only for the methods a client has
        // (callers feature-detect with typeof client.x === "function").
        const probe = ns.createClient({ endpoint: "http://127.0.0.1:1" });
        const methods = Object.keys(probe).filter((k) => typeof probe[k] === "function");
        post({ t: "ret", id: m.id, value: { version: ns.version, methods } });
      } else if (m.t === "create") {
        clients.set(m.client, ns.createClient(m.opts));
        post({ t: "ret", id: m.id });
      } else if (m.t === "call") {
        const c = clients.get(m.client);
        if (!c) throw new BitkitError(`bitkit: ${m.name}: this client could not be created (see the error of its first call)`, { code: "invalid_argument" });
        let value = await c[m.name](...revive(m.args, m.id));
        if (value && typeof value.download === "function") { // exportData
          const h = ++seq;
          handles.set(h, value.download);
          value = { job: value.job, url: value.url, __bitkitDownload: h };
        }
        post({ t: "ret", id: m.id, value });
      } else if (m.t === "download") {
        post({ t: "ret", id: m.id, value: await handles.get(m.handle)() });
      } else if (m.t === "cbret") {
        const p = pendingCb.get(m.id);
        pendingCb.delete(m.id);
        if (m.error) p.fail(Object.assign(new Error(m.error), { __bitkitPageError: true }));
        else p.ok(undefined);
      } else if (m.t === "chunkack") {
        const st = chunkPumps.get(m.call);
        if (st) {
          st.inflight--;
          if (m.stop && !st.stopped) { st.stopped = true; st.cancel?.(); }
          if (st.wake) { const w = st.wake; st.wake = null; w(); }
        }
        return;
      } else if (m.t === "abort") {
        signals.get(m.signal)?.abort();
      }
    } catch (e) {
      if (m.t === "create") clients.set(m.client, null);
      post({ t: "ret", id: m.id, error: errorFields(e) });
    }
  };
}

// loadWorker starts the Worker and returns a namespace of the same shape as
// load()'s, whose clients forward every call to it.
function loadWorker(opts) {
  // A bundle inlines this module: the Worker then starts from bitkit.mjs
  // served beside the bundle (with bitkit.wasm and wasm_exec.js), or workerURL.
  const w = new Worker(opts.workerURL ?? new URL("./bitkit.mjs", import.meta.url), { type: "module", name: "bitkit" });
  const calls = new Map();
  let seq = 0;
  w.onerror = (e) => {
    const err = new BitkitError(`bitkit: the Worker could not start (${(e && e.message) || "load error"}): serve bitkit.mjs beside your code or pass load({ workerURL }), or use load({ worker: false })`, { code: "load_failed" });
    for (const c of calls.values()) c.fail(err);
    calls.clear();
  };
  const send = (m, cbs, dec) => new Promise((ok, fail) => {
    const id = ++seq;
    calls.set(id, { ok, fail, cbs, dec, chain: Promise.resolve() });
    w.postMessage({ ...m, id });
  });
  w.onmessage = async (ev) => {
    const m = ev.data;
    if (m.t === "chunk") {
      // A chunk of a queryStream: decoded here, in order, then acknowledged
      // (the Worker keeps at most CHUNK_WINDOW chunks ahead). After a
      // failure the rest is skipped and the Worker told to stop.
      const call = calls.get(m.call);
      if (!call || !call.dec) return;
      call.chain = call.chain.then(async () => {
        if (call.decErr === undefined) {
          try {
            await call.dec.push(new Uint8Array(m.buf));
          } catch (e) {
            call.decErr = e;
          }
        }
        w.postMessage({ t: "chunkack", call: m.call, stop: call.decErr !== undefined });
      });
      return;
    }
    if (m.t === "cb") {
      const call = calls.get(m.call);
      try {
        await call.cbs[m.cb](...m.args);
        w.postMessage({ t: "cbret", id: m.id });
      } catch (e) {
        call.cbError = e; // the cause of the callback_error that follows
        w.postMessage({ t: "cbret", id: m.id, error: e instanceof Error ? e.message : String(e) });
      }
      return;
    }
    const call = calls.get(m.id);
    if (!call) return;
    calls.delete(m.id);
    if (call.dec) { // a queryStream: the page's decoder has the result
      await call.chain;
      if (call.decErr !== undefined) return call.fail(call.decErr);
      if (!m.error) {
        try { return call.ok(call.dec.finish()); } catch (e) { return call.fail(e); }
      }
    }
    if (!m.error) return call.ok(m.value);
    const f = m.error.fields;
    if (f.code === "callback_error" && call.cbError !== undefined) f.cause = call.cbError;
    call.fail(new BitkitError(m.error.message, f));
  };
  const ready = send({ t: "load", opts: { wasmURL: opts.wasmURL && String(opts.wasmURL), wasmExecURL: opts.wasmExecURL && String(opts.wasmExecURL) } });
  let clientSeq = 0;
  const methods = new Set(); // the client methods the Go side has
  // pack replaces functions and AbortSignals in call arguments by placeholders.
  const pack = (v, cbs, depth = 0) => {
    if (typeof v === "function") { cbs.push(v); return { __bitkitCb: cbs.length - 1 }; }
    if (typeof AbortSignal !== "undefined" && v instanceof AbortSignal) {
      const id = ++seq;
      v.addEventListener("abort", () => w.postMessage({ t: "abort", signal: id }), { once: true });
      return { __bitkitSignal: id, aborted: v.aborted };
    }
    if (depth < 2 && v && typeof v === "object" && !(v instanceof Blob) && !ArrayBuffer.isView(v) && !(v instanceof Date)) {
      if (Array.isArray(v)) return depth === 0 ? v.map((x) => pack(x, cbs, depth + 1)) : v;
      const o = {};
      for (const [k, x] of Object.entries(v)) o[k] = pack(x, cbs, depth + 1);
      return o;
    }
    return v;
  };
  const ns = {
    BitkitError,
    version: "",
    createClient(opts = {}) {
      if (opts && (opts.types !== undefined || (opts.tokenCache && opts.tokenCache !== "none"))) {
        throw new BitkitError("bitkit: createClient: types and tokenCache need the main-thread client (load({ worker: false }))", { code: "invalid_argument" });
      }
      const id = ++clientSeq;
      const sv = (k) => (opts && typeof opts[k] === "string" ? opts[k] : "");
      const values = { int8: sv("int8") || sv("int64") || "number-if-safe", numeric: sv("numeric") || "number-if-safe", dates: sv("timestamps") === "date" };
      const created = ready.then(() => send({ t: "create", client: id, opts }));
      created.catch(() => {});
      const endpoint = (opts && opts.endpoint) || (typeof location !== "undefined" ? location.origin : "");
      const client = new Proxy({}, {
        get(_, name) {
          if (name === "endpoint") return endpoint;
          if (name === "stream") return (db, sql, params, o) => streamRows(client, db, sql, params, o);
          if (name === "transaction") return (db, fn, o) => runTransaction(client, db, fn, o);
          if (typeof name !== "string" || !methods.has(name)) return undefined;
          return async (...args) => {
            let dec;
            const sink = args[3];
            if (name === "queryStream" && (typeof sink === "function" || (sink && typeof sink === "object" && typeof sink.onRows === "function"))) {
              // The Worker sends the NDJSON chunks; they are decoded here,
              // and onRow/onRows called here.
              const o = args[4] && typeof args[4] === "object" ? args[4] : {};
              const signal = typeof AbortSignal !== "undefined" && o.signal instanceof AbortSignal ? o.signal : null;
              dec = new RowDecoder(sink, { ...values, objects: o.format === "objects", batchRows: typeof o.batchRows === "number" ? Math.trunc(o.batchRows) : 1000, signal });
              args[3] = { __bitkitChunks: 0 };
            }
            await created;
            const cbs = [];
            const v = await send({ t: "call", client: id, name, args: pack(args, cbs) }, cbs, dec);
            if (v && v.__bitkitDownload !== undefined) {
              const h = v.__bitkitDownload;
              return { job: v.job, url: v.url, download: () => send({ t: "download", handle: h }) };
            }
            return v;
          };
        },
      });
      return client;
    },
  };
  return ready.then((r) => {
    ns.version = r.version;
    for (const m of r.methods) methods.add(m);
    globalThis.bitkit ??= ns; // a main-thread client loaded first keeps the name
    return ns;
  });
}

let workerLoading = null;

/**
 * Loads and starts bitkit.wasm once; resolves with the API namespace (also set as globalThis.bitkit).
 * In a page the Go instance runs in a dedicated Web Worker by default, behind the same Promise API;
 * { worker: false } runs it on the page's main thread (needed for the types and tokenCache options).
 */
export function load({ wasmURL, wasmExecURL, wasmModule, workerURL, worker = typeof document !== "undefined" && typeof Worker === "function" } = {}) {
  if (worker && !isBitkitWorker) {
    if (!workerLoading) {
      workerLoading = loadWorker({ wasmURL, wasmExecURL, workerURL });
      workerLoading.catch(() => { workerLoading = null; });
    }
    return workerLoading;
  }
  if (loading) return loading;
  loading = (async () => {
    if (!globalThis.Go) {
      wasmExecURL = wasmExecURL ?? new URL("./wasm_exec.js", import.meta.url);
      if (typeof document === "undefined") await import(String(wasmExecURL));
      else await loadScript(wasmExecURL);
    }
    const go = new globalThis.Go();
    const ready = new Promise((resolve) => {
      globalThis.__bitkitInit = { BitkitError, decodeRows, pumpStream, typeOf: (v) => typeof v, onReady: resolve };
    });
    const resp = wasmModule ? null : await fetch((wasmURL = wasmURL ?? new URL("./bitkit.wasm", import.meta.url)));
    if (resp && !resp.ok) throw new BitkitError(`bitkit: fetching ${wasmURL} answered ${resp.status}: check wasmURL`, { status: resp.status, code: "load_failed" });
    let instance;
    if (!resp) {
      // A compiled WebAssembly.Module, as Workers runtimes hand over an imported .wasm file.
      instance = await WebAssembly.instantiate(wasmModule, go.importObject);
    } else if ((resp.headers.get("Content-Type") || "").startsWith("application/wasm")) {
      ({ instance } = await WebAssembly.instantiateStreaming(resp, go.importObject));
    } else {
      // instantiateStreaming needs Content-Type application/wasm; some static hosts send something else.
      ({ instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject));
    }
    const exited = go.run(instance).then(() => {
      throw new BitkitError("bitkit: the wasm program exited before it was ready", { code: "load_failed" });
    });
    const ns = await Promise.race([ready, exited]);
    delete globalThis.__bitkitInit;
    const create = ns._createClient;
    delete ns._createClient;
    ns.createClient = (opts) => {
      const r = create(opts);
      if (r.error) throw r.error;
      const client = r.client;
      client.stream = (db, sql, params, opts) => streamRows(client, db, sql, params, opts);
      client.transaction = (db, fn, opts) => runTransaction(client, db, fn, opts);
      return client;
    };
    return ns;
  })();
  loading.catch(() => { loading = null; });
  return loading;
}
