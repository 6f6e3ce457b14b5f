// browser.mjs: runs suite.mjs in the page, with the Go instance in its Web
// Worker (load()'s default) and on the main thread; esbuild bundles it
// (TestBrowserTransactions) with bitkit.mjs served beside the bundle.
import { load } from "../../bitkit.mjs";
import { run } from "./suite.mjs";

const p = new URLSearchParams(location.search);
const env = { endpoint: p.get("endpoint"), apiKey: p.get("key"), user: p.get("user") };
try {
  const outcome = {};
  outcome.worker = await run(await load(), { ...env, db: p.get("db") + "w" });
  outcome.main = await run(await load({ worker: false }), { ...env, db: p.get("db") + "m" });
  window.__outcome = outcome;
} catch (e) {
  window.__outcome = { fatal: `${e && e.stack ? e.stack : e} ${e && e.code ? e.code : ""}` };
}
