// bench.mjs: navigation → API-ready and → first query result, then the
// first and last row of a 200k-row stream and the frames drawn during it,
// bitkit.wasm vs a plain fetch() of the same queries, in headless Chromium. Run by
// BenchmarkBrowserLoad in wasm/e2e_test.go (make bench-web), which passes
// BITKIT_ENDPOINT, BITKIT_API_KEY, BITKIT_DB, SITE_URL, RUNS, CHROMIUM.
// Prints one JSON line: {"wasm": {...medians}, "fetch": {...medians}}.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = process.env;
const runs = Number(env.RUNS || 7);
const profile = mkdtempSync(join(tmpdir(), "bitkit-bench-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Pages stay open in the background between checks: keep their timers (Go's scheduler) running.
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows", "--disable-renderer-backgrounding"],
});
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const out = {};
for (const mode of ["fetch", "wasm"]) {
  const ready = [], query = [], first = [], last = [], frames = [];
  for (let i = 0; i < runs; i++) {
    const page = await context.newPage();
    await page.route("**/*", (r) => r.continue()); // no HTTP cache between runs
    const u = new URL(`${env.SITE_URL}/test/bench.html`);
    for (const [k, v] of Object.entries({ mode, endpoint: env.BITKIT_ENDPOINT, key: env.BITKIT_API_KEY, db: env.BITKIT_DB })) u.searchParams.set(k, v);
    await page.goto(u.href);
    const r = await page.waitForFunction(() => window.benchResult, null, { timeout: 60000 }).then((h) => h.jsonValue());
    await page.close();
    if (r.error || r.rows !== 1000 || r.streamRows !== 200000) throw new Error(`${mode} run ${i}: ${JSON.stringify(r)}`);
    ready.push(r.ready);
    query.push(r.query);
    first.push(r.streamFirst);
    last.push(r.streamLast);
    frames.push(r.streamFrames);
  }
  out[mode] = { runs, readyMs: Math.round(median(ready)), queryMs: Math.round(median(query)),
    readyMinMs: Math.round(Math.min(...ready)), readyMaxMs: Math.round(Math.max(...ready)),
    streamFirstMs: Math.round(median(first)), streamLastMs: Math.round(median(last)), streamFrames: median(frames) };
}
await context.close();
rmSync(profile, { recursive: true, force: true });
console.log(JSON.stringify(out));
