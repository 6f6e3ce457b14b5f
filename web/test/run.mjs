// run.mjs: the headless-Chromium tests of the bitkit browser client and the
// dashboard, against a real bitd. wasm/e2e_test.go starts bitd and the static
// servers and runs this script with:
//   BITKIT_ENDPOINT, BITKIT_API_KEY, BITKIT_USER       the demo user
//   BITKIT_PW_USER, BITKIT_PW_PASSWORD, BITKIT_PW_KEY  a user with a password
//   SITE_URL         a static origin bitd allows (--allowed-origins)
//   DENIED_SITE_URL  a static origin bitd does not allow
//   ARTIFACTS        where screenshots go; CHROMIUM the browser binary
// It prints one line per check and "ALL PASSED" at the end, or exits 1.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = process.env;
for (const k of ["BITKIT_ENDPOINT", "BITKIT_API_KEY", "BITKIT_USER", "SITE_URL", "DENIED_SITE_URL", "ARTIFACTS"]) {
  if (!env[k]) {
    console.error(`run.mjs: ${k} is not set (run it through go test ./wasm -run TestBrowser)`);
    process.exit(2);
  }
}
const only = env.ONLY ? new RegExp(env.ONLY) : null;
// A check that has no result after this long fails (a Promise that never
// settles would otherwise hang the run); generous for a loaded CI machine.
const CHECK_TIMEOUT_MS = Number(env.CHECK_TIMEOUT_MS || 180000);
let failed = 0;
let passed = 0;

async function check(name, fn) {
  if (only && !only.test(name)) return;
  const t0 = Date.now();
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`no result after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS); })]);
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
  } finally {
    clearTimeout(timer);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const profile = mkdtempSync(join(tmpdir(), "bitkit-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1280, height: 860 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Pages stay open in the background between checks: keep their timers (Go's scheduler) running.
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows", "--disable-renderer-backgrounding"],
});
context.setDefaultTimeout(90000);
// Failed requests the tests provoke on purpose (401s, 404s, refused CORS).
const EXPECTED_CONSOLE = /Failed to load resource|favicon|CORS policy|net::ERR_FAILED/;
const consoleErrors = [];
context.on("page", (p) => {
  p.on("console", (m) => {
    if (m.type() !== "error" || EXPECTED_CONSOLE.test(m.text())) return;
    consoleErrors.push(m.text());
    console.log(`console error: ${m.text()}`);
  });
  p.on("pageerror", (e) => console.log(`page error: ${e.message}`));
});

const ids = Date.now().toString(36);
const cfg = {
  endpoint: env.BITKIT_ENDPOINT,
  apiKey: env.BITKIT_API_KEY,
  user: env.BITKIT_USER,
  pwUser: env.BITKIT_PW_USER,
  pwPassword: env.BITKIT_PW_PASSWORD,
  pwKey: env.BITKIT_PW_KEY,
  db: `webapi${ids}`,
};

async function apiPage(origin) {
  const page = await context.newPage();
  await page.goto(`${origin}/test/api.html`);
  await page.waitForFunction(() => window.bitkitReadyMs || window.bitkitLoadError, null, { timeout: 60000 });
  const err = await page.evaluate(() => window.bitkitLoadError);
  assert(!err, `loading bitkit failed: ${err}`);
  return page;
}

// ---------------------------------------------------------------- JS API
const api = await apiPage(env.SITE_URL);
await check("api: namespace and version", async () => {
  const v = await api.evaluate(() => ({ version: window.bitkit.version, fns: Object.keys(window.bitkit).sort() }));
  assert(/^\d+\.\d+\.\d+/.test(v.version), `version ${v.version}`);
  eq(v.fns.join(","), "BitkitError,createClient,version", "namespace keys");
});

await check("api: createClient rejects bad options", async () => {
  const r = await api.evaluate((c) => {
    const out = [];
    for (const o of [{ endpoint: c.endpoint, apiKey: "k", username: "u", password: "p" }, { username: "u" }, { int64: "float" }, { tokenCache: "cookie", username: "u", password: "p" }]) {
      try { window.bitkit.createClient(o); out.push("no throw"); } catch (e) { out.push(`${e instanceof window.bitkit.BitkitError}:${e.code}:${e.message}`); }
    }
    return out;
  }, cfg);
  for (const s of r) assert(s.startsWith("true:invalid_argument:bitkit: createClient"), `createClient error: ${s}`);
});

await check("api: account", async () => {
  const a = await api.evaluate(async (c) => window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey }).account(), cfg);
  eq(a.name, cfg.user, "account name");
  assert(a.id, "account id");
  const r = await api.evaluate(async (c) => window.rejection(window.bitkit.createClient({ endpoint: c.endpoint, apiKey: "v2_bogus" }).account()), cfg);
  assert(r.isBitkitError, "BitkitError");
  eq(r.status, 401, "status of a bogus key");
  eq(r.code, "unauthorized", "code of a bogus key");
  assert(r.requestId, "requestId set");
  assert(!r.message.includes("v2_bogus"), "the key must not appear in the message");
});

await check("api: databases CRUD", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const created = await k.createDatabase(c.db);
    const got = await k.getDatabase(`${c.user}/${c.db}`);
    const list = await k.listDatabases();
    const pub = await k.updateDatabase(`${c.user}/${c.db}`, { isPrivate: false });
    const renamed = await k.updateDatabase(`${c.user}/${c.db}`, { name: `${c.db}r` });
    const back = await k.updateDatabase(`${c.user}/${c.db}r`, { name: c.db });
    const missing = await window.rejection(k.getDatabase(`${c.user}/nope${c.db}`));
    const dup = await window.rejection(k.createDatabase(c.db));
    const badArg = await window.rejection(k.getDatabase(""));
    return { created, got, names: list.map((d) => d.name), pub, renamed, back, missing, dup, badArg };
  }, cfg);
  eq(r.created.name, `${cfg.user}/${cfg.db}`, "created name");
  eq(r.created.isPrivate, true, "default isPrivate");
  eq(r.created.role, "OWNER", "role");
  assert(typeof r.created.dateCreated === "string" && r.created.id, "id and dateCreated");
  eq(r.got.name, r.created.name, "getDatabase name");
  assert(r.names.includes(r.created.name), `listDatabases lacks ${r.created.name}: ${r.names}`);
  eq(r.pub.isPrivate, false, "updateDatabase isPrivate");
  eq(r.renamed.name, `${cfg.user}/${cfg.db}r`, "renamed");
  eq(r.back.name, r.created.name, "renamed back");
  eq(r.missing.status, 404, "missing database status");
  eq(r.missing.code, "not_found", "missing database code");
  eq(r.dup.status, 409, "duplicate database status");
  eq(r.badArg.code, "invalid_argument", "empty name code");
});

await check("api: collaborators: shareDatabase, listCollaborators, removeCollaborator", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const other = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.pwKey });
    const full = (await k.createDatabase(`${c.db}s`)).name;
    const before = await window.rejection(other.getDatabase(full));
    const empty = await k.listCollaborators(full);
    const shared = await k.shareDatabase(full, c.pwUser, "reader");
    const seen = (await other.listDatabases()).find((d) => d.name === full);
    const readerInsert = await window.rejection(other.query(full, "create table t (x int)"));
    const notAdmin = await window.rejection(other.listCollaborators(full));
    const changed = await k.shareDatabase(full, c.pwUser, "WRITER");
    const listed = await k.listCollaborators(full);
    const unknown = await window.rejection(k.shareDatabase(full, `nobody${c.db}`, "READER"));
    const self = await window.rejection(k.shareDatabase(full, c.user, "READER"));
    const badArg = await window.rejection(k.shareDatabase(full, "", "READER"));
    await k.removeCollaborator(full, c.pwUser);
    const gone = await window.rejection(other.getDatabase(full));
    const twice = await window.rejection(k.removeCollaborator(full, c.pwUser));
    const after = await k.listCollaborators(full);
    await k.deleteDatabase(full);
    return { before, empty, shared, seen, readerInsert, notAdmin, changed, listed, unknown, self, badArg, gone, twice, after };
  }, cfg);
  eq(r.before.status, 404, "before sharing, the other user cannot see it");
  eq(JSON.stringify(r.empty), "[]", "no collaborators yet");
  eq(`${r.shared.username}:${r.shared.role}`, `${cfg.pwUser}:READER`, "shareDatabase answer");
  eq(r.seen && r.seen.role, "READER", "the collaborator lists it with their role");
  eq(r.readerInsert.sqlstate, "42501", "a READER's DDL fails with PostgreSQL's permission error");
  eq(r.notAdmin.status, 403, "a READER cannot list collaborators");
  eq(r.changed.role, "WRITER", "role change");
  eq(JSON.stringify(r.listed.map((c) => [c.username, c.role])), JSON.stringify([[cfg.pwUser, "WRITER"]]), "listCollaborators");
  eq(r.unknown.status, 404, "unknown user");
  assert(r.unknown.message.includes(`nobody${cfg.db}`), `the 404 names the user: ${r.unknown.message}`);
  eq(r.self.status, 400, "sharing with yourself");
  eq(r.badArg.code, "invalid_argument", "empty user name");
  eq(r.gone.status, 404, "after removal the database is gone for them");
  eq(r.twice.status, 404, "removing twice");
  eq(JSON.stringify(r.after), "[]", "no collaborators after removal");
});

await check("api: query values are exact (int8 bigint)", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey, int8: "bigint", numeric: "string" });
    const res = await k.query(`${c.user}/${c.db}`,
      "select 9223372036854775807::int8 as big, (-9223372036854775808)::int8 as small, 7::int4 as i4, 12345678901234567890.000001::numeric as n, 1.5::float8 as f, 'x' as t, null::text as z, true as b, '{\"a\":[1,2]}'::jsonb as j, array[9007199254740993,2]::int8[] as arr, $1::int8 as p1, $2::text as p2",
      [9223372036854775806n, "hello"]);
    const row = res.rows[0];
    return { types: row.map((v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v)),
      big: row[0] === 9223372036854775807n, small: row[1] === -9223372036854775808n, i4: row[2] === 7,
      n: row[3], f: row[4], t: row[5], z: row[6], b: row[7], j: JSON.stringify(row[8]),
      arr: row[9].map(String).join(","), p1: row[10] === 9223372036854775806n, p2: row[11],
      columns: res.columns.map((c) => `${c.name}:${c.type}`).join(","), rowCount: res.rowCount, metaBig: res.metadata.big, command: res.command };
  }, cfg);
  eq(r.types.join(","), "bigint,bigint,number,string,number,string,null,boolean,object,array,bigint,string", "value types");
  assert(r.big && r.small && r.i4 && r.p1, `exact int8: ${JSON.stringify(r)}`);
  eq(r.n, "12345678901234567890.000001", "numeric");
  eq(r.f, 1.5, "float8");
  eq(r.j, '{"a":[1,2]}', "jsonb");
  eq(r.arr, "9007199254740993,2", "int8[]");
  eq(r.p2, "hello", "text param");
  eq(r.rowCount, 1, "rowCount");
  eq(r.metaBig, "bigint", "metadata");
  assert(r.columns.startsWith("big:bigint,small:bigint,i4:integer,n:numeric"), `columns ${r.columns}`);
  assert(r.command.startsWith("SELECT"), `command ${r.command}`);
});

await check("api: int64 string mode and objects format", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey, int64: "string" });
    const res = await k.query(`${c.user}/${c.db}`, "select 9223372036854775807::int8 as big, 5::int4 as i4, 2.50::numeric as n", [], { format: "objects" });
    return res.rows[0];
  }, cfg);
  eq(r.big, "9223372036854775807", "int8 as string");
  eq(r.i4, 5, "int4 as number");
  eq(r.n, "2.50", "numeric as string");
});

await check("api: default values are JSON-ready numbers where exact; value options", async () => {
  const r = await api.evaluate(async (c) => {
    const db = `${c.user}/${c.db}`;
    const sql = "select 1 as one, 9007199254740993::int8 as unsafe, 2.5::numeric as n, 2.50::numeric as n2, array[1,2]::int8[] as arr, '2026-01-02 03:04:05+00'::timestamptz as ts";
    const d = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const res = await d.query(db, sql);
    const dates = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey, timestamps: "date",
      types: { 1700: (v) => `N:${v}`, integer: (v) => v * 10 } });
    const row2 = (await dates.query(db, sql)).rows[0];
    return { json: JSON.stringify(res.rows), isDate: row2[5] instanceof Date, year: row2[5].getUTCFullYear(), parsed: [row2[0], row2[2], row2[3]].join(","),
      bad: await window.rejection((async () => window.bitkit.createClient({ endpoint: c.endpoint, int8: "float" }))()) };
  }, cfg);
  eq(r.json, '[[1,"9007199254740993",2.5,"2.50",[1,2],"2026-01-02T03:04:05+00:00"]]', "default values");
  assert(r.isDate && r.year === 2026, `timestamps: "date": ${JSON.stringify(r)}`);
  eq(r.parsed, "10,N:2.5,N:2.50", "types parsers by OID and by name");
  eq(r.bad.code, "invalid_argument", "bad int8 mode");
});

await check("api: one statement per query; callback failures are BitkitErrors with a cause", async () => {
  const r = await api.evaluate(async (c) => {
    const db = `${c.user}/${c.db}`;
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const thrown = new Error("mine");
    const syncErr = await window.rejection(k.queryStream(db, "select 1", [], () => { throw thrown; }));
    const asyncErr = await window.rejection(k.queryStream(db, "select 1", [], async () => { throw thrown; }));
    const withParams = await window.rejection(k.query(db, "select $1::int; select 2", [1]));
    const without = await window.rejection(k.query(db, "select 1; select 2"));
    const ok = await k.query(db, "select ';' as s; -- trailing comment");
    return { syncErr, asyncErr, withParams, without, ok: ok.rows[0][0],
      causeSame: await k.queryStream(db, "select 1", [], async () => { throw thrown; }).catch((e) => e instanceof window.bitkit.BitkitError && e.cause === thrown) };
  }, cfg);
  eq(r.syncErr.code, "callback_error", "sync throw code");
  eq(r.asyncErr.code, "callback_error", "async rejection code");
  assert(r.causeSame, "the cause is the thrown value");
  eq(r.withParams.code, "invalid_argument", "two statements with params");
  eq(r.without.code, "invalid_argument", "two statements without params");
  assert(r.without.message.includes("batch()"), `message ${r.without.message}`);
  eq(r.ok, ";", "a semicolon inside a string is one statement");
});

await check("api: query errors carry status, code, sqlstate", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    return {
      sql: await window.rejection(k.query(`${c.user}/${c.db}`, "select * from no_such_table")),
      arg: await window.rejection(k.query(`${c.user}/${c.db}`, "select 1", "notarray")),
      fmt: await window.rejection(k.query(`${c.user}/${c.db}`, "select 1", [], { format: "csv" })),
      aborted: await window.rejection(k.query(`${c.user}/${c.db}`, "select 1", [], { signal: AbortSignal.abort() })),
      canceled: await (async () => {
        const ac = new AbortController();
        const t0 = performance.now();
        const p = k.query(`${c.user}/${c.db}`, "select pg_sleep(30)", [], { signal: ac.signal });
        setTimeout(() => ac.abort(), 300);
        const r = await window.rejection(p);
        r.ms = performance.now() - t0;
        return r;
      })(),
    };
  }, cfg);
  assert(r.sql.isBitkitError, "instanceof BitkitError");
  eq(r.sql.name, "BitkitError", "name");
  eq(r.sql.status, 400, "status");
  eq(r.sql.code, "sql_error", "code");
  eq(r.sql.sqlstate, "42P01", "sqlstate");
  assert(r.sql.position > 0, `position ${r.sql.position}`);
  assert(r.sql.requestId, "requestId");
  assert(r.sql.message.includes("no_such_table"), `message ${r.sql.message}`);
  eq(r.arg.code, "invalid_argument", "params not an array");
  eq(r.fmt.code, "invalid_argument", "bad format");
  eq(r.aborted.code, "canceled", "an aborted signal");
  eq(r.canceled.code, "canceled", "abort during the query");
  assert(r.canceled.ms < 25000, `the abort ended the 30 s query early (after ${r.canceled.ms} ms)`);
});

await check("api: queryStream", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    let sum = 0n;
    let last = -1;
    const res = await k.queryStream(`${c.user}/${c.db}`, "select g::int8 as g, 'r' || g as s from generate_series(1, $1::int) g", [2000],
      async (row, i) => { sum += BigInt(row[0]); last = i; if (i % 500 === 0) await new Promise((ok) => setTimeout(ok, 1)); });
    const objs = [];
    await k.queryStream(`${c.user}/${c.db}`, "select 1::int8 as a, 'x' as b", undefined, (row) => objs.push(row), { format: "objects" });
    const bad = await window.rejection(k.queryStream(`${c.user}/${c.db}`, "select * from missing_t", [], () => {}));
    const cbErr = await window.rejection(k.queryStream(`${c.user}/${c.db}`, "select 1", [], () => Promise.reject(new Error("callback said no"))));
    return { sum: String(sum), last, rowCount: res.rowCount, cols: res.columns.map((c) => c.name).join(","), obj: `${objs[0].a}/${objs[0].b}`, bad, cbErr };
  }, cfg);
  eq(r.sum, String((2000 * 2001) / 2), "sum of streamed rows");
  eq(r.last, 1999, "last index");
  eq(r.rowCount, 2000, "rowCount");
  eq(r.cols, "g,s", "columns");
  eq(r.obj, "1/x", "objects format");
  eq(r.bad.sqlstate, "42P01", "stream error sqlstate");
  eq(r.cbErr.code, "callback_error", "callback rejection code");
  assert(r.cbErr.message.endsWith("callback said no"), `callback rejection message ${r.cbErr.message}`);
});

await check("api: batched streams (onRows, for await) keep frames coming", async () => {
  const sql = "select g, 'row ' || g as s, g * 0.5 as h from generate_series(1, $1::int) g";
  const b = await api.evaluate(async ([c, sql]) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const sizes = [];
    await k.queryStream(`${c.user}/${c.db}`, sql, [2500], { onRows: (batch) => { sizes.push(batch.length); } }, { batchRows: 1000 });
    return sizes;
  }, [cfg, sql]);
  assert(b.every((n) => n <= 1000) && b.reduce((x, y) => x + y, 0) === 2500, `batch sizes ${b}`);
  const r = await api.evaluate(async ([c, sql]) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    let frames = 0, counting = true;
    const tick = () => { frames++; if (counting) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    let rows = 0, sum = 0;
    const t0 = performance.now();
    for await (const row of k.stream(`${c.user}/${c.db}`, sql, [200000])) { rows++; sum += row[0]; }
    const ms = performance.now() - t0;
    counting = false;
    return { rows, sum, frames, ms };
  }, [cfg, sql]);
  eq(r.rows, 200000, "rows from for await");
  eq(r.sum, (200000 * 200001) / 2, "sum of g");
  assert(r.frames > 0, `frames drawn during the 200k-row stream: ${r.frames}`);
  const e = await api.evaluate(async ([c, sql]) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    let seen = 0;
    for await (const row of k.stream(`${c.user}/${c.db}`, sql, [100000])) { if (++seen === 10) break; }
    const after = await k.query(`${c.user}/${c.db}`, "select 1");
    const t1 = performance.now();
    const resp = await fetch(`${c.endpoint}/v2beta/query`, { method: "POST", headers: { Authorization: `Bearer ${c.apiKey}`, Accept: "application/x-ndjson", "Content-Type": "application/json" },
      body: JSON.stringify({ database_name: `${c.user}/${c.db}`, query_string: sql, params: [200000] }) });
    const lines = (await resp.text()).split("\n").filter((l) => l).map((l) => JSON.parse(l));
    return { seen, after: after.rows[0][0], fetchMs: performance.now() - t1, lines: lines.length };
  }, [cfg, sql]);
  eq(e.seen, 10, "break after 10 rows");
  eq(e.after, 1, "the client works after an early break");
  console.log(`     200k-row stream: ${Math.round(r.ms)} ms, ${r.frames} frames; plain fetch + JSON.parse of the same NDJSON: ${Math.round(e.fetchMs)} ms (${e.lines} lines)`);
});

await check("api: worker mode (load({ worker: true })): same API off the main thread", async () => {
  const r = await api.evaluate(async (c) => {
    const mod = await import(new URL("../bitkit.mjs", location.href));
    const wb = await mod.load({ worker: true });
    const k = wb.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const db = `${c.user}/${c.db}`;
    const q = await k.query(db, "select 1 as one, $1::int8 as big, $2::timestamptz as ts", [9223372036854775807n, new Date(Date.UTC(2026, 0, 2))]);
    let perRow = 0;
    await k.queryStream(db, "select g from generate_series(1, 3000) g", [], async (row, i) => { perRow += row[0]; if (i === 5) await new Promise((ok) => setTimeout(ok, 1)); });
    const thrown = new Error("worker-side no");
    const cbErr = await k.queryStream(db, "select 1", [], () => { throw thrown; }).catch((e) => ({ code: e.code, same: e.cause === thrown, cls: e instanceof mod.BitkitError }));
    const sqlErr = await k.query(db, "select * from nope_t").catch((e) => ({ code: e.code, sqlstate: e.sqlstate, cls: e instanceof mod.BitkitError }));
    const aborted = await k.query(db, "select pg_sleep(5)", [], { signal: AbortSignal.timeout(200) }).catch((e) => e.code);
    let frames = 0, counting = true;
    const tick = () => { frames++; if (counting) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    const t0 = performance.now();
    let rows = 0, sum = 0;
    for await (const row of k.stream(db, "select g, 'row ' || g as s, g * 0.5 as h from generate_series(1, $1::int) g", [200000])) { rows++; sum += row[0]; }
    const ms = performance.now() - t0;
    counting = false;
    return { q: JSON.stringify(q.rows), perRow, cbErr, sqlErr, aborted, rows, sum, frames, ms, endpoint: k.endpoint === c.endpoint };
  }, cfg);
  eq(r.q, '[[1,"9223372036854775807","2026-01-02T00:00:00+00:00"]]', "values through the worker");
  eq(r.perRow, (3000 * 3001) / 2, "onRow per row through the worker");
  assert(r.cbErr.code === "callback_error" && r.cbErr.same && r.cbErr.cls, `callback error ${JSON.stringify(r.cbErr)}`);
  assert(r.sqlErr.code === "sql_error" && r.sqlErr.sqlstate === "42P01" && r.sqlErr.cls, `sql error ${JSON.stringify(r.sqlErr)}`);
  eq(r.aborted, "canceled", "AbortSignal through the worker");
  eq(r.rows, 200000, "200k rows through the worker");
  eq(r.sum, (200000 * 200001) / 2, "sum through the worker");
  assert(r.frames > 0 && r.endpoint, `frames ${r.frames}`);
  console.log(`     worker mode: 200k-row stream ${Math.round(r.ms)} ms, ${r.frames} frames`);
});

await check("api: streamed values are the same in the Worker and on the main thread, for every value option", async () => {
  const r = await api.evaluate(async (c) => {
    const mod = await import(new URL("../bitkit.mjs", location.href));
    const wb = await mod.load({ worker: true });
    const db = `${c.user}/${c.db}`;
    // Every kind of value the options touch, NULLs, and strings that look
    // like numbers or JSON (the stream decoder must leave them alone).
    const sql = `select g::int4 as i4, (g * 1000000000000)::int8 as i8, case when g = 2 then null else 9007199254740993::int8 end as big,
      (g * 1.25)::numeric as n, 12345678901234567890.123456789::numeric as hugen, 'NaN'::numeric as nan,
      g * 0.5 as h, 1.5::float8 as f, (g % 2 = 0) as b,
      '2026-01-02 03:04:05.123456'::timestamp as ts, '2026-01-02 03:04:05+02'::timestamptz as tstz, '2026-01-02'::date as d,
      '\\x00ff10'::bytea as by, '{"b": 1, "a": [1, 9007199254740993, "x,1]"]}'::json as js, '{"z": 2.50, "y": null}'::jsonb as jb,
      array[1, 9223372036854775807]::int8[] as a8, array[1.50, null]::numeric[] as an, array['a,1', 'q"2]', null]::text[] as at,
      array['2026-01-02 03:04:05+00'::timestamptz] as ats,
      case when g = 3 then null else '[1, "2", {"3": 4}] \\" -5' end as s, null::int8 as nul
      from generate_series(1, 3) g`;
    const ser = (v) => v === null ? "null" : typeof v === "bigint" ? `${v}n` : v instanceof Date ? `D(${v.toISOString()})`
      : Array.isArray(v) ? `[${v.map(ser).join(",")}]` : typeof v === "object" ? `{${Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + ser(v[k])).join(",")}}`
      : typeof v === "number" ? `N${v}` : JSON.stringify(v);
    const options = [];
    for (const int8 of ["bigint", "string", "number-if-safe"]) for (const numeric of ["string", "number-if-safe"]) for (const timestamps of ["string", "date"]) options.push({ int8, numeric, timestamps });
    const out = [];
    for (const o of options) {
      for (const format of ["rows", "objects"]) {
        const main = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey, ...o });
        const work = wb.createClient({ endpoint: c.endpoint, apiKey: c.apiKey, ...o });
        const got = {};
        const perRow = [];
        await main.queryStream(db, sql, [], (row) => { perRow.push(row); }, { format });
        got.mainRow = ser(perRow);
        const batches = [];
        await main.queryStream(db, sql, [], { onRows: (rows) => { batches.push(...rows); } }, { format, batchRows: 2 });
        got.mainRows = ser(batches);
        const wrows = [];
        for await (const row of work.stream(db, sql, [], { format })) wrows.push(row);
        got.worker = ser(wrows);
        const wPerRow = [];
        await work.queryStream(db, sql, [], (row) => { wPerRow.push(row); }, { format });
        got.workerRow = ser(wPerRow);
        got.query = ser((await main.query(db, sql, [], { format })).rows);
        out.push({ o: JSON.stringify({ ...o, format }), got });
      }
    }
    return out;
  }, cfg);
  eq(r.length, 24, "option combinations");
  for (const { o, got } of r) {
    for (const k of ["mainRows", "worker", "workerRow", "query"]) eq(got[k], got.mainRow, `${o}: ${k} against the main thread's onRow`);
  }
  // Spot checks that the options took effect (the comparisons above would
  // also pass if every mode ignored them).
  const first = (o) => r.find((x) => x.o === JSON.stringify({ int8: o[0], numeric: o[1], timestamps: o[2], format: "rows" })).got.mainRow;
  const a = first(["bigint", "string", "date"]), b = first(["number-if-safe", "number-if-safe", "string"]), s = first(["string", "string", "string"]);
  assert(a.startsWith('[[N1,1000000000000n,9007199254740993n,"1.25","12345678901234567890.123456789","NaN","0.5",N1.5,false,D(2026-01-02T03:04:05.123Z),D(2026-01-02T01:04:05.000Z),D(2026-01-02T00:00:00.000Z),"AP8Q"'), `bigint/string/date: ${a}`);
  assert(b.startsWith('[[N1,N1000000000000,"9007199254740993",N1.25,"12345678901234567890.123456789","NaN",N0.5,N1.5,false,"2026-01-02T03:04:05.123456","2026-01-02T01:04:05+00:00","2026-01-02"'), `number-if-safe: ${b}`);
  assert(b.includes('{"a":[N1,N9007199254740992,"x,1]"],"b":N1}'), `json values are plain JSON numbers: ${b}`);
  assert(s.includes('["1","9223372036854775807"],["1.50",null],["a,1","q\\"2]",null]'), `int8 "string" arrays: ${s}`);
  assert(s.includes(',null,null]]'), `NULLs: ${s}`);
});

await check("api: stream errors, early break and abort in both modes", async () => {
  const r = await api.evaluate(async (c) => {
    const mod = await import(new URL("../bitkit.mjs", location.href));
    const wb = await mod.load({ worker: true });
    const db = `${c.user}/${c.db}`;
    const out = {};
    for (const [mode, k] of [["main", window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey })], ["worker", wb.createClient({ endpoint: c.endpoint, apiKey: c.apiKey })]]) {
      const fields = (e) => ({ cls: e instanceof mod.BitkitError, code: e.code, sqlstate: e.sqlstate, status: e.status, same: e.cause });
      // An error trailer after rows went out: division by zero at row 150,000.
      let seen = 0;
      const trailer = await k.queryStream(db, "select 1 / (g - 150000) as x from generate_series(1, 200000) g", [], { onRows: (rows) => { seen += rows.length; } })
        .then(() => null, fields);
      const early = await k.queryStream(db, "select * from no_such_stream_t", [], () => {}).then(() => null, fields);
      let n = 0;
      for await (const row of k.stream(db, "select g from generate_series(1, 100000) g")) if (++n === 10) break;
      const after = (await k.query(db, "select 2 as two")).rows[0][0];
      const ac = new AbortController();
      let got = 0;
      const aborted = await k.queryStream(db, "select g from generate_series(1, 300000) g", [], { onRows: (rows) => { got += rows.length; if (got >= 1000) ac.abort(); } }, { signal: ac.signal })
        .then(() => null, fields);
      // An abort from onRows once the whole (small) answer is read: no
      // batch after it, and the call rejects.
      let smallCalls = 0;
      const ac2 = new AbortController();
      const abortedLate = await k.queryStream(db, "select g from generate_series(1, 3000) g", [], { onRows: () => { smallCalls++; ac2.abort(); } }, { signal: ac2.signal, batchRows: 500 })
        .then(() => null, fields);
      const mine = new Error("stop here");
      const cb = await k.queryStream(db, "select g from generate_series(1, 5000) g", [], { onRows: async () => { throw mine; } }).then(() => null, (e) => ({ ...fields(e), same: e.cause === mine }));
      out[mode] = { trailer, seen, early, n, after, aborted, abortedLate, smallCalls, cb };
    }
    return out;
  }, cfg);
  for (const mode of ["main", "worker"]) {
    const m = r[mode];
    assert(m.trailer && m.trailer.cls && m.trailer.code === "sql_error" && m.trailer.sqlstate === "22012" && m.trailer.status === 400, `${mode}: error trailer ${JSON.stringify(m.trailer)}`);
    assert(m.seen > 0 && m.seen < 150000, `${mode}: rows before the error trailer: ${m.seen}`);
    assert(m.early && m.early.cls && m.early.sqlstate === "42P01", `${mode}: error before the rows ${JSON.stringify(m.early)}`);
    eq(m.n, 10, `${mode}: break after 10 rows`);
    eq(m.after, 2, `${mode}: the client works after a break`);
    assert(m.aborted && m.aborted.cls && m.aborted.code === "canceled", `${mode}: abort mid-stream ${JSON.stringify(m.aborted)}`);
    assert(m.abortedLate && m.abortedLate.cls && m.abortedLate.code === "canceled", `${mode}: abort after the answer was read ${JSON.stringify(m.abortedLate)}`);
    eq(m.smallCalls, 1, `${mode}: onRows calls after an abort from onRows`);
    assert(m.cb && m.cb.code === "callback_error" && m.cb.same, `${mode}: onRows rejection ${JSON.stringify(m.cb)}`);
  }
});

await check("api: batch all or nothing", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const db = `${c.user}/${c.db}`;
    const ok = await k.batch(db, ["create table t_batch (id int8, name text)",
      { sql: "insert into t_batch values ($1, $2), (2, 'b')", params: [9223372036854775807n, "a"] },
      "select id, name from t_batch order by name"], { isolationLevel: "serializable" });
    const bad = await window.rejection(k.batch(db, ["insert into t_batch values (3, 'c')", "select * from nope_t"]));
    const after = await k.query(db, "select count(*)::int8 from t_batch");
    const ro = await window.rejection(k.batch(db, ["insert into t_batch values (4, 'd')"], { readOnly: true }));
    const empty = await window.rejection(k.batch(db, []));
    return { n: ok.length, first: String(ok[2].rows[0][0]), count: String(after.rows[0][0]), bad, ro, empty };
  }, cfg);
  eq(r.n, 3, "results");
  eq(r.first, "9223372036854775807", "exact int8 through a batch");
  eq(r.count, "2", "the failed batch left nothing behind");
  eq(r.bad.status, 400, "batch error status");
  eq(r.bad.sqlstate, "42P01", "batch error sqlstate");
  eq(r.ro.sqlstate, "25006", "read-only batch sqlstate");
  eq(r.empty.code, "invalid_argument", "empty batch");
});

await check("api: importFile and exportData", async () => {
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    const db = `${c.user}/${c.db}`;
    const lines = ["id,name,score"];
    for (let i = 1; i <= 500; i++) lines.push(`${i},name ${i},${i * 1.5}`);
    const file = new File([lines.join("\n") + "\n"], "scores.csv", { type: "text/csv" });
    const events = [];
    const job = await k.importFile(db, file, { table: "scores", onProgress: (e) => events.push(e.phase === "job" ? `job:${e.job.state}` : e.phase) });
    const count = await k.query(db, "select count(*)::int8, sum(id)::int8 from scores");
    const exp = await k.exportData(db, { query: "select id, name from scores where id <= 3 order by id", format: "csv", fileName: "three.csv" });
    const blob = await exp.download();
    const text = await blob.text();
    const badImport = await window.rejection(k.importFile(db, new Blob(["a,b\n1,2,3,4\n\"unterminated\n"]), { table: "broken" }));
    const noTable = await window.rejection(k.importFile(db, file, {}));
    const badExport = await window.rejection(k.exportData(db, { query: "select * from missing_export_t" }));
    const bothExport = await window.rejection(k.exportData(db, { query: "select 1", table: "scores" }));
    return { state: job.state, events: [...new Set(events)].join(","), count: String(count.rows[0][0]), sum: String(count.rows[0][1]),
      expState: exp.job.state, url: exp.url, text, badImport, noTable, badExport, bothExport };
  }, cfg);
  eq(r.state, "DONE", "import job state");
  assert(r.events.includes("upload") && r.events.includes("job:DONE"), `progress events ${r.events}`);
  eq(r.count, "500", "imported rows");
  eq(r.sum, "125250", "imported ids");
  eq(r.expState, "DONE", "export job state");
  assert(r.url, "export url");
  eq(r.text.trim().split(/\r?\n/).join("|"), "id,name|1,name 1|2,name 2|3,name 3", "exported CSV");
  assert(r.badImport.isBitkitError && (r.badImport.code === "job_failed" || r.badImport.status === 400), `bad import: ${JSON.stringify(r.badImport)}`);
  if (r.badImport.code === "job_failed") assert(r.badImport.jobState === "FAILED" && r.badImport.jobErrorType, `failed job fields: ${JSON.stringify(r.badImport)}`);
  eq(r.noTable.code, "invalid_argument", "import without table");
  assert(r.badExport.isBitkitError && (r.badExport.code === "job_failed" || r.badExport.status === 400), `bad export: ${JSON.stringify(r.badExport)}`);
  eq(r.bothExport.code, "invalid_argument", "export with query and table");
});

await check("api: username/password, token cache, login, logout", async () => {
  const r = await api.evaluate(async (c) => {
    sessionStorage.clear();
    const k = window.bitkit.createClient({ endpoint: c.endpoint, username: c.pwUser, password: c.pwPassword, tokenCache: "session" });
    await k.login();
    const cached = Object.keys(sessionStorage).filter((x) => x.startsWith("bitkit.token:"));
    const stored = cached.length ? sessionStorage.getItem(cached[0]) : "";
    const acct = await k.account();
    await k.logout();
    const afterLogout = Object.keys(sessionStorage).filter((x) => x.startsWith("bitkit.token:")).length;
    const wrong = await window.rejection(window.bitkit.createClient({ endpoint: c.endpoint, username: c.pwUser, password: "wrong" }).login());
    const none = window.bitkit.createClient({ endpoint: c.endpoint, username: c.pwUser, password: c.pwPassword });
    await none.login();
    const noneCached = Object.keys(sessionStorage).length + Object.keys(localStorage).filter((x) => x.startsWith("bitkit.token:")).length;
    const login = await fetch(`${c.endpoint}/auth/v1/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: c.pwUser, password: c.pwPassword }) }).then((x) => x.json());
    const tokAcct = await window.bitkit.createClient({ endpoint: c.endpoint, token: login.access_token }).account();
    const badTok = await window.rejection(window.bitkit.createClient({ endpoint: c.endpoint, token: "not-a-token" }).account());
    return { n: cached.length, hasPassword: stored.includes(c.pwPassword), acct: acct.name, afterLogout, wrong, noneCached, tok: tokAcct.name, badTok };
  }, cfg);
  eq(r.n, 1, "one cached token in sessionStorage");
  eq(r.hasPassword, false, "the cache never holds the password");
  eq(r.acct, cfg.pwUser, "account through the password login");
  eq(r.afterLogout, 0, "logout removed the cached token");
  eq(r.wrong.status, 401, "wrong password status");
  assert(!r.wrong.message.includes("wrong"), "the password must not appear in the message");
  eq(r.noneCached, 0, "tokenCache none stores nothing");
  eq(r.tok, cfg.pwUser, "token client");
  eq(r.badTok.status, 401, "bad token status");
});

await check("api: listApiKeys, revokeApiKeyById, listServiceAccounts (main thread, Worker, password sign-in)", async () => {
  const r = await api.evaluate(async (c) => {
    const main = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.pwKey });
    const made = await main.createApiKey();
    const pw = window.bitkit.createClient({ endpoint: c.endpoint, username: c.pwUser, password: c.pwPassword });
    const listed = await main.listApiKeys();
    const byPassword = await pw.listApiKeys();
    const mod = await import(new URL("../bitkit.mjs", location.href));
    const wk = (await mod.load({ worker: true })).createClient({ endpoint: c.endpoint, apiKey: c.pwKey });
    const inWorker = await wk.listApiKeys();
    // The key just made is the newest one that is not the caller's own.
    const target = listed.filter((k) => !k.current).at(-1);
    const newWorks = (await window.bitkit.createClient({ endpoint: c.endpoint, apiKey: made.apiKey }).account()).name;
    await wk.revokeApiKeyById(target.id);
    const afterRevoke = await window.rejection(window.bitkit.createClient({ endpoint: c.endpoint, apiKey: made.apiKey }).account());
    const again = await window.rejection(main.revokeApiKeyById(target.id));
    const empty = await window.rejection(main.revokeApiKeyById(""));
    const afterIds = (await pw.listApiKeys()).map((k) => k.id);
    const saName = `sa${Date.now().toString(36)}`;
    const made2 = await fetch(`${c.endpoint}/v2beta/service-account/`, { method: "POST", headers: { Authorization: `Bearer ${c.pwKey}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: saName, role: "READER", databases: [] }) });
    const sas = await pw.listServiceAccounts();
    const sasWorker = await wk.listServiceAccounts();
    const sa = sas.find((s) => s.name === saName);
    return { listed, byPassword, inWorker: inWorker.map((k) => k.id), target: target.id, newWorks, afterRevoke, again, empty, afterIds,
      saStatus: made2.status, sa, saWorker: sasWorker.some((s) => s.name === saName), leaked: JSON.stringify(listed).includes(made.apiKey) };
  }, cfg);
  assert(r.listed.length >= 2, `listApiKeys: ${JSON.stringify(r.listed)}`);
  const cur = r.listed.filter((k) => k.current);
  eq(cur.length, 1, "exactly one key is the caller's own");
  for (const k of r.listed) {
    assert(typeof k.id === "string" && k.id && typeof k.label === "string" && k.label, `key fields ${JSON.stringify(k)}`);
    assert(!Number.isNaN(Date.parse(k.dateCreated)), `dateCreated ${k.dateCreated}`);
    assert(k.lastUsed === null || !Number.isNaN(Date.parse(k.lastUsed)), `lastUsed ${k.lastUsed}`);
  }
  eq(r.leaked, false, "listApiKeys never shows a key itself");
  eq(JSON.stringify(r.byPassword.map((k) => k.id)), JSON.stringify(r.listed.map((k) => k.id)), "the same keys after a username/password sign-in");
  eq(r.byPassword.some((k) => k.current), false, "no key is current for a password sign-in");
  eq(JSON.stringify(r.inWorker), JSON.stringify(r.listed.map((k) => k.id)), "the same keys through the Worker");
  eq(r.newWorks, cfg.pwUser, "the new key works before it is revoked");
  eq(r.afterRevoke.status, 401, "revokeApiKeyById (through the Worker) ended the key");
  eq(r.again.status, 404, "revoking the same id again");
  eq(r.empty.code, "invalid_argument", "revokeApiKeyById('')");
  eq(r.afterIds.includes(r.target), false, "the revoked key is gone from the list");
  eq(r.saStatus, 201, "creating a service account");
  assert(r.sa && r.sa.role === "READER" && typeof r.sa.id === "string" && r.sa.activeTokenCount === 0, `listServiceAccounts: ${JSON.stringify(r.sa)}`);
  eq(r.saWorker, true, "the service account through the Worker");
});

await check("api: API keys create, revoke, revoke all", async () => {
  const r = await api.evaluate(async (c) => {
    const main = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.pwKey });
    const k1 = await main.createApiKey();
    const k2 = await main.createApiKey();
    const c1 = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: k1.apiKey });
    const before = (await c1.account()).name;
    await main.revokeApiKey(k1.apiKey);
    const revoked = await window.rejection(c1.account());
    const stillOK = (await window.bitkit.createClient({ endpoint: c.endpoint, apiKey: k2.apiKey }).account()).name;
    const emptyArg = await window.rejection(main.revokeApiKey(""));
    await window.bitkit.createClient({ endpoint: c.endpoint, apiKey: k2.apiKey }).revokeAllApiKeys();
    const all1 = await window.rejection(window.bitkit.createClient({ endpoint: c.endpoint, apiKey: k2.apiKey }).account());
    const all2 = await window.rejection(main.account());
    return { user: k1.username, distinct: k1.apiKey !== k2.apiKey, before, revoked, stillOK, emptyArg, all1, all2 };
  }, cfg);
  eq(r.user, cfg.pwUser, "key username");
  assert(r.distinct, "two distinct keys");
  eq(r.before, cfg.pwUser, "new key works");
  eq(r.revoked.status, 401, "revoked key");
  eq(r.stillOK, cfg.pwUser, "other key still works");
  eq(r.emptyArg.code, "invalid_argument", "revokeApiKey('')");
  eq(r.all1.status, 401, "revokeAll: the caller's key");
  eq(r.all2.status, 401, "revokeAll: the other key");
});

// ---------------------------------------------------------------- CORS
await check("cors: allowed origin works, request ID exposed", async () => {
  const r = await api.evaluate(async (c) => {
    const res = await fetch(`${c.endpoint}/v2beta/query`, { method: "POST",
      headers: { Authorization: `Bearer ${c.apiKey}`, "Content-Type": "application/json", "Idempotency-Key": "x1" },
      body: JSON.stringify({ database_name: `${c.user}/${c.db}`, query_string: "select 41 + 1 as v" }) });
    return { status: res.status, rid: res.headers.get("X-Request-Id"), body: await res.json() };
  }, cfg);
  eq(r.status, 200, "status");
  assert(r.rid, "X-Request-Id readable from the page");
  eq(JSON.stringify(r.body.data), "[[42]]", "data");
});

await check("cors: denied origin fails", async () => {
  const denied = await apiPage(env.DENIED_SITE_URL);
  const r = await denied.evaluate(async (c) => {
    let fetchErr = "";
    try {
      await fetch(`${c.endpoint}/v2beta/query`, { method: "POST", headers: { Authorization: `Bearer ${c.apiKey}`, "Content-Type": "application/json" },
        body: JSON.stringify({ database_name: `${c.user}/${c.db}`, query_string: "select 1" }) });
    } catch (e) { fetchErr = `${e.name}`; }
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    return { fetchErr, api: await window.rejection(k.account()) };
  }, cfg).catch(async (e) => { throw e; });
  await denied.close();
  eq(r.fetchErr, "TypeError", "plain fetch from a denied origin");
  eq(r.api.code, "network_error", "client from a denied origin");
  eq(r.api.status, 0, "no status");
  assert(r.api.message.includes("--allowed-origins"), `hint in ${r.api.message}`);
});


await check("cors: bitd preflight answers (allowed 204, refused 403)", async () => {
  const pre = (origin) => fetch(`${cfg.endpoint}/v2beta/query`, { method: "OPTIONS",
    headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,idempotency-key" } });
  const ok = await pre(env.SITE_URL);
  eq(ok.status, 204, "allowed preflight status");
  eq(ok.headers.get("access-control-allow-origin"), env.SITE_URL, "Allow-Origin");
  for (const h of ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "Accept", "X-Bitkit-Account"]) {
    assert(ok.headers.get("access-control-allow-headers").includes(h), `Allow-Headers lacks ${h}`);
  }
  assert(ok.headers.get("access-control-expose-headers").includes("X-Request-Id"), "Expose-Headers");
  assert((ok.headers.get("vary") || "").includes("Origin"), "Vary: Origin");
  const no = await pre(env.DENIED_SITE_URL);
  eq(no.status, 403, "refused preflight status");
  eq(no.headers.get("access-control-allow-origin"), null, "no Allow-Origin for a refused origin");
  eq((await no.json()).code, "cors_origin_not_allowed", "refused preflight code");
});

// The dashboard has its own suite: web/test/dashboard.mjs, run by go test ./web.

await check("api: deleteDatabase", async () => {
  await api.bringToFront();
  const r = await api.evaluate(async (c) => {
    const k = window.bitkit.createClient({ endpoint: c.endpoint, apiKey: c.apiKey });
    await k.deleteDatabase(`${c.user}/${c.db}`);
    return { gone: await window.rejection(k.getDatabase(`${c.user}/${c.db}`)), again: await window.rejection(k.deleteDatabase(`${c.user}/${c.db}`)) };
  }, cfg);
  eq(r.gone.status, 404, "deleted database is gone");
  eq(r.again.status, 404, "deleting twice");
});

await api.screenshot({ path: join(env.ARTIFACTS, "api-page.png") });
await context.close();
rmSync(profile, { recursive: true, force: true });
if (consoleErrors.length) console.log(`${consoleErrors.length} unexpected console error(s), listed above`);
writeFileSync(join(env.ARTIFACTS, "summary.txt"), `passed ${passed}, failed ${failed}\n`);
console.log(`${passed} passed, ${failed} failed`);
if (failed) process.exit(1);
console.log("ALL PASSED");
