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

// decodeRows parses the rows Go wrote as JSON text. int8 and numeric values
// arrive as strings of their exact digits (also inside arrays): columns in
// spec.bigint become BigInt, those in spec.safe become numbers where the
// number prints back as the same digits (else they stay strings), the rest
// stay strings. spec.date columns become Date objects (a timestamp without
// zone is taken as UTC); spec.parse holds [column, parser] pairs of the
// client's types option, called on the non-null values as sent (int8 and
// numeric as digit strings) instead of the conversions above. With
// spec.objects each row becomes {column name: value}.
function decodeRows(text, spec) {
  const rows = JSON.parse(text);
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
// messages. Functions cannot cross: callbacks (onRow, onRows, onProgress)
// travel as ids and are called back on the page; AbortSignals as ids too.

const isBitkitWorker = typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope && globalThis.name === "bitkit";

// errorFields is what crosses for a BitkitError.
function errorFields(e) {
  if (!(e instanceof Error)) return { message: String(e), fields: { code: "client_error" } };
  const f = {};
  for (const k of ["status", "code", "sqlstate", "detail", "hint", "position", "requestId", "index", "job"]) if (e[k] !== undefined) f[k] = e[k];
  return { message: e.message, fields: f };
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
  const send = (m, cbs) => new Promise((ok, fail) => {
    const id = ++seq;
    calls.set(id, { ok, fail, cbs });
    w.postMessage({ ...m, id });
  });
  w.onmessage = async (ev) => {
    const m = ev.data;
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
      const created = ready.then(() => send({ t: "create", client: id, opts }));
      created.catch(() => {});
      const endpoint = (opts && opts.endpoint) || (typeof location !== "undefined" ? location.origin : "");
      const client = new Proxy({}, {
        get(_, name) {
          if (name === "endpoint") return endpoint;
          if (name === "stream") return (db, sql, params, o) => streamRows(client, db, sql, params, o);
          if (typeof name !== "string" || !methods.has(name)) return undefined;
          return async (...args) => {
            if (name === "queryStream" && typeof args[3] === "function") {
              // One message per batch, not per row: onRow runs here, row by row.
              const onRow = args[3];
              let start = 0;
              args[3] = { onRows: (rows, columns) => { const r = eachRow(rows, onRow, start, columns); start += rows.length; return r; } };
            }
            await created;
            const cbs = [];
            const v = await send({ t: "call", client: id, name, args: pack(args, cbs) }, cbs);
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
export function load({ wasmURL, wasmExecURL, workerURL, worker = typeof document !== "undefined" && typeof Worker === "function" } = {}) {
  if (worker && !isBitkitWorker) {
    if (!workerLoading) {
      workerLoading = loadWorker({ wasmURL, wasmExecURL, workerURL });
      workerLoading.catch(() => { workerLoading = null; });
    }
    return workerLoading;
  }
  if (loading) return loading;
  loading = (async () => {
    wasmURL = wasmURL ?? new URL("./bitkit.wasm", import.meta.url);
    wasmExecURL = wasmExecURL ?? new URL("./wasm_exec.js", import.meta.url);
    if (!globalThis.Go) {
      if (typeof document === "undefined") await import(String(wasmExecURL));
      else await loadScript(wasmExecURL);
    }
    const go = new globalThis.Go();
    const ready = new Promise((resolve) => {
      globalThis.__bitkitInit = { BitkitError, decodeRows, eachRow, typeOf: (v) => typeof v, onReady: resolve };
    });
    const resp = await fetch(wasmURL);
    if (!resp.ok) throw new BitkitError(`bitkit: fetching ${wasmURL} answered ${resp.status}: check wasmURL`, { status: resp.status, code: "load_failed" });
    let instance;
    if ((resp.headers.get("Content-Type") || "").startsWith("application/wasm")) {
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
      return client;
    };
    return ns;
  })();
  loading.catch(() => { loading = null; });
  return loading;
}
