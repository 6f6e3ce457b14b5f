// bitkit.mjs: ES-module loader of the bitkit browser client (bitkit.wasm).
//
//   import { load } from "./bitkit.mjs";
//   const bitkit = await load();                       // fetches bitkit.wasm next to this file
//   const c = bitkit.createClient({ endpoint, apiKey });
//   const r = await c.query("me/db", "select 1::int8 as n"); // r.rows[0][0] === 1n
//
// Types: bitkit.d.ts. The Go side lives in wasm/*.go.

/** Every rejection of the API is a BitkitError (fields: status, code, sqlstate, detail, hint, position, requestId). */
export class BitkitError extends Error {
  constructor(message, fields = {}) {
    super(message);
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

// decodeRows parses the rows Go wrote as JSON text: columns listed in
// spec.bigint hold integer digits as strings (also inside arrays) and become
// BigInt; with spec.objects each row becomes {column name: value}.
function decodeRows(text, spec) {
  const rows = JSON.parse(text);
  const big = spec.bigint;
  if (big.length) {
    const toBig = (v) => (v === null ? null : Array.isArray(v) ? v.map(toBig) : BigInt(v));
    for (const r of rows) for (const c of big) r[c] = toBig(r[c]);
  }
  if (!spec.objects) return rows;
  const names = spec.names;
  return rows.map((r) => {
    const o = {};
    for (let i = 0; i < names.length; i++) o[names[i]] = r[i];
    return o;
  });
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

/** Loads and starts bitkit.wasm once; resolves with the API namespace (also set as globalThis.bitkit). */
export function load({ wasmURL, wasmExecURL } = {}) {
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
      globalThis.__bitkitInit = { BitkitError, decodeRows, typeOf: (v) => typeof v, onReady: resolve };
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
      return r.client;
    };
    return ns;
  })();
  loading.catch(() => { loading = null; });
  return loading;
}
