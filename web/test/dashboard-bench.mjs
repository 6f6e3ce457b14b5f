// dashboard-bench.mjs: the dashboard's figures in headless Chromium at
// 1400×900, each next to a plain fetch() reference. Run by BenchmarkDashboard
// in web/dashboard_test.go (make bench-web) with BITKIT_ENDPOINT,
// BITKIT_API_KEY, BITKIT_DB, SITE_URL, RUNS, CHROMIUM. Prints one JSON line
// of medians over RUNS page loads:
//   readyMs          navigation start → signed in (session resumed), editor mounted, wasm client ready
//   firstRowMs       Ctrl+Enter → first row of a 200,000-row result painted in the grid
//   allRowsMs        Ctrl+Enter → the result's summary line (all rows counted)
//   fetchFirstRowMs  plain fetch() of the same query (NDJSON): request → first row line read
//   fetchAllRowsMs   plain fetch(): request → last line read
//   scrollP50Ms, scrollP95Ms  frame time while scrolling the 100,000 rows in the grid
//   idleP50Ms        frame time of the same page, not scrolling (the reference)
import { chromium } from "playwright-core";

const env = process.env;
const runs = Number(env.RUNS || 3);
const SQL = "select g::int8 as id, md5(g::text) as hash, g % 97 as bucket from generate_series(1, 200000) g";
const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-background-timer-throttling", "--disable-renderer-backgrounding"],
});
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };
const m = {};
const add = (k, v) => { (m[k] ||= []).push(v); };

for (let i = 0; i < runs; i++) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addInitScript(([endpoint, apiKey, db]) => {
    sessionStorage.setItem("bitkit.dashboard.session", JSON.stringify({ endpoint, apiKey }));
    sessionStorage.setItem("bitkit.dashboard.db", db);
  }, [env.BITKIT_ENDPOINT, env.BITKIT_API_KEY, env.BITKIT_DB]);
  const page = await context.newPage();
  await page.goto(`${env.SITE_URL}/index.html?endpoint=${encodeURIComponent(env.BITKIT_ENDPOINT)}`);
  await page.waitForFunction(() => window.dashboardReady === true, null, { timeout: 60000 });
  add("readyMs", await page.evaluate(() => window.dashboardReadyAt));
  await page.getByRole("heading", { name: env.BITKIT_DB }).waitFor();

  // The reference: the same query by plain fetch, NDJSON, in the same page.
  const ref = await page.evaluate(async ([endpoint, key, db, sql]) => {
    const t0 = performance.now();
    const res = await fetch(`${endpoint}/v2beta/query`, { method: "POST", headers: { Authorization: `Bearer ${key}`, Accept: "application/x-ndjson", "Content-Type": "application/json" },
      body: JSON.stringify({ database_name: db, query_string: sql }) });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let lines = 0, first = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const c of dec.decode(value, { stream: true })) if (c === "\n") lines++;
      if (!first && lines >= 2) first = performance.now() - t0;
    }
    return { first, all: performance.now() - t0, lines };
  }, [env.BITKIT_ENDPOINT, env.BITKIT_API_KEY, env.BITKIT_DB, SQL]);
  if (ref.lines !== 200002) throw new Error(`fetch reference read ${ref.lines} lines`);
  add("fetchFirstRowMs", ref.first);
  add("fetchAllRowsMs", ref.all);

  // The dashboard: Ctrl+Enter in the editor, the first grid cell, the summary.
  await page.getByRole("textbox", { name: "SQL editor" }).click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(SQL);
  await page.evaluate(() => {
    window.bench = {};
    document.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.ctrlKey) window.bench.t0 = performance.now(); }, { capture: true });
    const grid = document.querySelector("[role=grid]");
    new MutationObserver((_, obs) => {
      if (grid.querySelector("[role=gridcell]")) { requestAnimationFrame(() => { window.bench.first = performance.now(); }); obs.disconnect(); }
    }).observe(grid, { childList: true, subtree: true });
  });
  await page.keyboard.press("Control+Enter");
  await page.waitForFunction(() => /^SELECT 200000 /.test(document.querySelector("#panel-sql [role=status]").textContent), null, { timeout: 300000 });
  const b = await page.evaluate(() => ({ first: window.bench.first - window.bench.t0, all: performance.now() - window.bench.t0 }));
  add("firstRowMs", b.first);
  add("allRowsMs", b.all);

  // Frame times: 120 frames scrolling 900 px each, then 120 idle frames.
  const frames = await page.evaluate(() => new Promise((done) => {
    const body = document.querySelector("[role=grid] .grid-body");
    const out = { scroll: [], idle: [] };
    let last = performance.now(), n = 0;
    const tick = (now) => {
      (n < 120 ? out.scroll : out.idle).push(now - last);
      last = now;
      if (n < 120) body.scrollTop += 900;
      if (++n < 240) requestAnimationFrame(tick); else done(out);
    };
    requestAnimationFrame((now) => { last = now; requestAnimationFrame(tick); });
  }));
  add("scrollP50Ms", pct(frames.scroll, 0.5));
  add("scrollP95Ms", pct(frames.scroll, 0.95));
  add("idleP50Ms", pct(frames.idle, 0.5));
  await context.close();
}
await browser.close();
const out = { runs };
for (const [k, v] of Object.entries(m)) out[k] = Math.round(median(v) * 10) / 10;
console.log(JSON.stringify(out));
