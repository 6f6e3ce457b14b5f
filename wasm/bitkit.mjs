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
      globalThis.__bitkitInit = { BitkitError, onReady: resolve };
    });
    let instance;
    const resp = fetch(wasmURL);
    try {
      ({ instance } = await WebAssembly.instantiateStreaming(resp, go.importObject));
    } catch (err) {
      // instantiateStreaming needs Content-Type application/wasm; fall back for hosts that send something else.
      const r = await resp;
      if (!r.ok) throw new BitkitError(`bitkit: fetching ${wasmURL} answered ${r.status}`, { status: r.status, code: "load_failed" });
      ({ instance } = await WebAssembly.instantiate(await r.clone().arrayBuffer(), go.importObject));
    }
    const exited = go.run(instance).then(() => {
      throw new BitkitError("bitkit: the wasm program exited before it was ready", { code: "load_failed" });
    });
    const ns = await Promise.race([ready, exited]);
    delete globalThis.__bitkitInit;
    return ns;
  })();
  loading.catch(() => { loading = null; });
  return loading;
}
