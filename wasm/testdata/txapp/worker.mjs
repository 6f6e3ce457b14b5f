// worker.mjs: runs suite.mjs in workerd (TestWorkerdTransactions in
// workers/workerdtest): the browser build of bitkit.wasm, imported as a
// compiled module, handed to load({ wasmModule }). esbuild bundles this file
// with kysely and drizzle-orm; wasm_exec.js (Go's) and app.wasm (bitkit.wasm)
// are modules of their own beside it.
import "./wasm_exec.js";
import wasmModule from "./app.wasm";
import { load } from "../../bitkit.mjs";
import { run } from "./suite.mjs";

export default {
  async fetch(req) {
    const u = new URL(req.url);
    if (u.pathname === "/healthz") return Response.json({ status: "ok" });
    const p = u.searchParams;
    try {
      const bitkit = await load({ wasmModule });
      return Response.json(await run(bitkit, { endpoint: p.get("endpoint"), apiKey: p.get("key"), user: p.get("user"), db: p.get("db") }));
    } catch (e) {
      return Response.json({ fatal: `${e && e.stack ? e.stack : e} ${e && e.code ? e.code : ""}` }, { status: 500 });
    }
  },
};
