// bitkit dashboard: plain ES module on the wasm client (bitkit.mjs).
// Served by bitd at / (endpoint = same origin) or from any static host with
// ?endpoint=http://… or the endpoint field under Settings.
import { load } from "./bitkit.mjs";

const $ = (id) => document.getElementById(id);
const ROW_H = 28;
const HISTORY_KEY = "bitkit.dashboard.history";
const ENDPOINT_KEY = "bitkit.dashboard.endpoint";

let bitkit;
let client = null;
let accountName = "";
let currentDb = "";
let databases = [];
let result = null; // last query result {columns, rows}
let exportResult = null;

function show(el, on = true) { el.hidden = !on; }
function setError(el, err) {
  if (!err) { show(el, false); el.textContent = ""; return; }
  const parts = [err.message || String(err)];
  if (err.sqlstate) parts.push(`SQLSTATE ${err.sqlstate}`);
  if (err.hint) parts.push(`Hint: ${err.hint}`);
  if (err.detail) parts.push(`Detail: ${err.detail}`);
  if (err.requestId) parts.push(`Request ID: ${err.requestId}`);
  el.textContent = parts.join("\n");
  show(el, true);
}
async function busy(btn, fn) {
  btn.disabled = true;
  try { return await fn(); } finally { btn.disabled = false; }
}
function fmt(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "object") return JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x));
  return String(v);
}
function shortName(full) { return full.includes("/") ? full.slice(full.indexOf("/") + 1) : full; }

// ---------------------------------------------------------------- sign in
function endpointSetting() {
  const q = new URLSearchParams(location.search).get("endpoint");
  if (q) return q;
  return localStorage.getItem(ENDPOINT_KEY) || (location.protocol.startsWith("http") ? location.origin : "");
}

function methodChanged() {
  const m = document.querySelector("input[name=method]:checked").value;
  for (const el of document.querySelectorAll("[data-method]")) show(el, el.dataset.method === m);
}

async function signIn(ev) {
  ev.preventDefault();
  const btn = ev.submitter || $("signin").querySelector("button[type=submit]");
  setError($("signin-error"), null);
  const endpoint = $("endpoint").value.trim().replace(/\/+$/, "");
  const method = document.querySelector("input[name=method]:checked").value;
  const opts = { endpoint };
  if (method === "key") opts.apiKey = $("apikey").value.trim();
  else {
    opts.username = $("username").value.trim();
    opts.password = $("password").value;
  }
  await busy(btn, async () => {
    try {
      const c = bitkit.createClient(opts);
      const acct = await c.account();
      localStorage.setItem(ENDPOINT_KEY, endpoint);
      $("password").value = "";
      await enter(c, acct.name);
    } catch (err) {
      setError($("signin-error"), err);
    }
  });
}

async function enter(c, name) {
  client = c;
  accountName = name;
  $("who").textContent = `${name} @ ${c.endpoint}`;
  show($("signout"));
  show($("signin-view"), false);
  show($("app-view"));
  await refreshDatabases();
}

async function signOut() {
  try { await client.logout(); } catch { /* the token may already be gone */ }
  client = null;
  currentDb = "";
  $("apikey").value = "";
  $("who").textContent = "";
  show($("signout"), false);
  show($("app-view"), false);
  show($("signin-view"));
}

// ---------------------------------------------------------------- databases
async function refreshDatabases() {
  try {
    databases = await client.listDatabases();
    setError($("db-error"), null);
  } catch (err) {
    setError($("db-error"), err);
    return;
  }
  databases.sort((a, b) => a.name.localeCompare(b.name));
  if (currentDb && !databases.some((d) => d.name === currentDb)) currentDb = "";
  if (!currentDb && databases.length) currentDb = databases[0].name;
  const ul = $("db-list");
  ul.replaceChildren(...databases.map((d) => {
    const li = document.createElement("li");
    li.setAttribute("aria-current", String(d.name === currentDb));
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = d.name;
    b.addEventListener("click", () => { currentDb = d.name; refreshDatabases(); });
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = d.isPrivate ? "private" : "public";
    li.append(b, tag);
    return li;
  }));
  if (!databases.length) ul.innerHTML = '<li class="muted">No databases yet.</li>';
  const db = databases.find((d) => d.name === currentDb);
  $("current-db").textContent = db ? db.name : "No database selected";
  show($("db-actions"), !!db);
  if (db) {
    // A toggle button: its label stays "Private", aria-pressed says whether it is on.
    $("db-privacy").setAttribute("aria-pressed", String(db.isPrivate));
    $("db-privacy").title = db.isPrivate ? "Private: press to make it public" : "Public: press to make it private";
    $("db-rename").value = shortName(db.name);
  }
}

async function createDatabase(ev) {
  ev.preventDefault();
  const name = $("db-name").value.trim();
  await busy(ev.submitter || $("db-create").querySelector("button"), async () => {
    try {
      const db = await client.createDatabase(name, { isPrivate: $("db-private").checked });
      currentDb = db.name;
      $("db-name").value = "";
      await refreshDatabases();
    } catch (err) { setError($("db-error"), err); }
  });
}

async function renameDatabase() {
  const name = $("db-rename").value.trim();
  if (!name || name === shortName(currentDb)) return;
  await busy($("db-rename-btn"), async () => {
    try {
      const db = await client.updateDatabase(currentDb, { name });
      currentDb = db.name;
      await refreshDatabases();
    } catch (err) { setError($("db-error"), err); }
  });
}

async function togglePrivacy() {
  const db = databases.find((d) => d.name === currentDb);
  if (!db) return;
  await busy($("db-privacy"), async () => {
    try {
      await client.updateDatabase(currentDb, { isPrivate: !db.isPrivate });
      await refreshDatabases();
    } catch (err) { setError($("db-error"), err); }
  });
}

// Two-step confirmation for destructive buttons: the first press arms it.
function armed(btn, label, fn) {
  const original = btn.textContent;
  let timer = 0;
  btn.addEventListener("click", async () => {
    if (!btn.classList.contains("armed")) {
      btn.classList.add("armed");
      btn.textContent = label;
      timer = setTimeout(() => { btn.classList.remove("armed"); btn.textContent = original; }, 5000);
      return;
    }
    clearTimeout(timer);
    btn.classList.remove("armed");
    btn.textContent = original;
    await busy(btn, fn);
  });
}

async function deleteDatabase() {
  try {
    await client.deleteDatabase(currentDb);
    currentDb = "";
    await refreshDatabases();
  } catch (err) { setError($("db-error"), err); }
}

// ---------------------------------------------------------------- tabs
function selectTab(tab) {
  for (const t of document.querySelectorAll("[role=tab]")) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    show($(t.getAttribute("aria-controls")), on);
  }
  tab.focus();
}
function tabKeys(ev) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const i = tabs.indexOf(document.activeElement);
  if (i < 0) return;
  if (ev.key === "ArrowRight") selectTab(tabs[(i + 1) % tabs.length]);
  if (ev.key === "ArrowLeft") selectTab(tabs[(i + tabs.length - 1) % tabs.length]);
}

// ---------------------------------------------------------------- SQL
function history() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY)) || []; } catch { return []; }
}
function remember(sql) {
  const h = [sql, ...history().filter((s) => s !== sql)].slice(0, 20);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(h));
  renderHistory();
}
function renderHistory() {
  const sel = $("history");
  const opts = history().map((s) => {
    const o = document.createElement("option");
    o.value = s;
    o.textContent = s.length > 80 ? `${s.slice(0, 77)}…` : s;
    return o;
  });
  sel.replaceChildren(sel.options[0], ...opts);
  sel.value = "";
}

async function runQuery() {
  const sql = $("sql").value.trim();
  if (!sql) return;
  if (!currentDb) { setError($("query-error"), new Error("Create or select a database first.")); return; }
  setError($("query-error"), null);
  $("query-status").textContent = "Running…";
  const ac = new AbortController();
  const cancel = $("cancel");
  cancel.onclick = () => ac.abort();
  show(cancel);
  await busy($("run"), async () => {
    const t0 = performance.now();
    try {
      const r = await client.query(currentDb, sql, [], { signal: ac.signal });
      const ms = Math.round(performance.now() - t0);
      remember(sql);
      result = r;
      $("query-status").textContent = `${r.rows.length.toLocaleString()} row${r.rows.length === 1 ? "" : "s"} (${r.command}) in ${ms} ms`;
      renderGrid();
      renderChartOptions();
    } catch (err) {
      $("query-status").textContent = err.code === "canceled" ? "Canceled." : "";
      if (err.code !== "canceled") setError($("query-error"), err);
    } finally {
      show(cancel, false);
    }
  });
}

// The grid renders only the rows in view (plus a margin), so 100k rows
// scroll smoothly: the spacer has the full height, rows are positioned in it.
function renderGrid() {
  const grid = $("grid");
  const head = grid.querySelector(".grid-head");
  const body = grid.querySelector(".grid-body");
  const spacer = grid.querySelector(".grid-spacer");
  const cols = result ? result.columns : [];
  head.replaceChildren(...cols.map((c) => {
    const d = document.createElement("div");
    d.setAttribute("role", "columnheader");
    d.textContent = c.name;
    d.title = `${c.name} (${c.type})`;
    return d;
  }));
  const n = result ? result.rows.length : 0;
  grid.setAttribute("aria-rowcount", String(n + 1));
  grid.setAttribute("aria-colcount", String(cols.length));
  spacer.style.height = `${n * ROW_H}px`;
  spacer.style.minWidth = `${cols.length * 9}rem`;
  body.scrollTop = 0;
  drawRows();
}
function drawRows() {
  const body = $("grid").querySelector(".grid-body");
  const spacer = body.firstElementChild;
  if (!result) { spacer.replaceChildren(); return; }
  const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 10);
  const last = Math.min(result.rows.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW_H) + 10);
  const out = [];
  for (let i = first; i < last; i++) {
    const row = document.createElement("div");
    row.className = "grid-row";
    row.setAttribute("role", "row");
    row.setAttribute("aria-rowindex", String(i + 2));
    row.style.top = `${i * ROW_H}px`;
    for (const v of result.rows[i]) {
      const cell = document.createElement("div");
      cell.setAttribute("role", "gridcell");
      const s = fmt(v);
      if (s === null) { cell.textContent = "NULL"; cell.className = "null"; } else { cell.textContent = s; cell.title = s.length > 20 ? s : ""; }
      row.append(cell);
    }
    out.push(row);
  }
  spacer.replaceChildren(...out);
  $("grid").querySelector(".grid-head").scrollLeft = body.scrollLeft;
}

// Numeric column types by OID: int8, int2, int4, oid, float4, float8, numeric.
const NUMERIC = new Set([20, 21, 23, 26, 700, 701, 1700]);
function renderChartOptions() {
  const sel = $("chart-col");
  const cols = result.columns.map((c, i) => ({ c, i })).filter(({ c }) => NUMERIC.has(c.typeOid));
  show($("chart-box"), cols.length > 0 && result.rows.length > 0);
  sel.replaceChildren(...cols.map(({ c, i }) => {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = c.name;
    return o;
  }));
  // Prefer the last numeric column (typically the measure, after the key).
  if (cols.length) sel.value = String(cols[cols.length - 1].i);
  drawChart();
}

// A bar chart of up to 400 points (larger results are sampled evenly).
function drawChart() {
  const svg = $("chart");
  const idx = Number($("chart-col").value);
  if (!result || Number.isNaN(idx)) { svg.replaceChildren(); return; }
  const W = 800, H = 240, pad = 30;
  const n = result.rows.length;
  const step = Math.max(1, Math.ceil(n / 400));
  const vals = [];
  for (let i = 0; i < n; i += step) { const v = result.rows[i][idx]; vals.push(v === null ? 0 : Number(v)); }
  const max = Math.max(0, ...vals), min = Math.min(0, ...vals);
  const span = max - min || 1;
  const bw = (W - pad) / vals.length;
  const y = (v) => H - pad - ((v - min) / span) * (H - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const parts = [el("line", { class: "axis", x1: pad, y1: y(0), x2: W, y2: y(0) }),
    el("text", { x: 2, y: y(max) + 4 }, String(+max.toPrecision(4))),
    el("text", { x: 2, y: y(min) }, String(+min.toPrecision(4)))];
  vals.forEach((v, i) => {
    const top = Math.min(y(v), y(0));
    parts.push(el("rect", { class: "bar", x: pad + i * bw, y: top, width: Math.max(bw - 1, 0.5), height: Math.max(Math.abs(y(v) - y(0)), 0.5) }));
  });
  svg.setAttribute("aria-label", `Bar chart of ${result.columns[idx].name}: ${vals.length} values from ${min} to ${max}`);
  svg.replaceChildren(...parts);
}

// ---------------------------------------------------------------- import
async function importFile(file) {
  if (!currentDb) { showImportError({ message: "Create or select a database first." }); return; }
  const table = $("import-table").value.trim();
  const bar = $("import-progress");
  showImportError(null);
  bar.value = 0;
  bar.max = 1;
  show(bar);
  $("import-status").textContent = `Uploading ${file.name} (${file.size.toLocaleString()} bytes)…`;
  try {
    const job = await client.importFile(currentDb, file, {
      table, inferHeader: $("import-header").value,
      onProgress: (e) => {
        if (e.phase === "upload") {
          bar.max = e.total || 1;
          bar.value = e.loaded;
        } else if (e.phase === "job") {
          const p = e.job.progress;
          if (p && p.bytesTotal) { bar.max = p.bytesTotal; bar.value = p.bytesDone; }
          $("import-status").textContent = `Job ${e.job.state}${p && p.rows ? ` — ${p.rows.toLocaleString()} rows` : ""}`;
        }
      },
    });
    bar.value = bar.max;
    const rows = job.progress && job.progress.rows ? ` ${job.progress.rows.toLocaleString()} rows` : "";
    $("import-status").textContent = `Job ${job.state}:${rows} imported into ${table}.`;
  } catch (err) {
    show(bar, false);
    $("import-status").textContent = "";
    showImportError(err);
  }
}
function showImportError(err) {
  const box = $("import-error");
  if (!err) { show(box, false); return; }
  const job = err.job;
  const fields = [];
  if (job) {
    const details = { ...(job.errorDetails || {}) };
    if (details.message) { fields.push(["Message", String(details.message)]); delete details.message; }
    fields.push(["Error type", job.errorType || "(none)"], ["Job state", job.state]);
    for (const [k, v] of Object.entries(details)) fields.push([k.replace(/_/g, " "), typeof v === "string" ? v : JSON.stringify(v)]);
    if (job.errorId) fields.push(["Error ID", job.errorId]);
  } else {
    fields.push(["Message", err.message || String(err)]);
    if (err.code) fields.push(["Code", err.code]);
    if (err.status) fields.push(["HTTP status", String(err.status)]);
    if (err.requestId) fields.push(["Request ID", err.requestId]);
  }
  $("import-error-fields").replaceChildren(...fields.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  show(box);
}

// ---------------------------------------------------------------- export
async function runExport() {
  if (!currentDb) { setError($("export-error"), new Error("Create or select a database first.")); return; }
  setError($("export-error"), null);
  show($("export-download"), false);
  exportResult = null;
  const query = $("export-query").value.trim();
  const table = $("export-table").value.trim();
  const format = $("export-format").value;
  const base = (table || "export").replace(/[^A-Za-z0-9_-]/g, "_");
  const ext = { csv: "csv", json: "json", xls: "xlsx", parquet: "parquet" }[format];
  show($("export-progress"));
  $("export-status").textContent = "Exporting…";
  await busy($("export-run"), async () => {
    try {
      exportResult = await client.exportData(currentDb, {
        ...(query ? { query } : { table }), format, fileName: `${base}.${ext}`,
        onProgress: (e) => { if (e.phase === "job") $("export-status").textContent = `Job ${e.job.state}`; },
      });
      $("export-status").textContent = `Job ${exportResult.job.state}: ${exportResult.job.fileName || `${base}.${ext}`} is ready.`;
      show($("export-download"));
    } catch (err) {
      $("export-status").textContent = "";
      setError($("export-error"), err.job ? Object.assign(new Error(`Export failed: ${err.job.errorType}`), { detail: JSON.stringify(err.job.errorDetails) }) : err);
    } finally {
      show($("export-progress"), false);
    }
  });
}
async function download() {
  if (!exportResult) return;
  await busy($("export-download"), async () => {
    try {
      const blob = await exportResult.download();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = exportResult.job.fileName || "export";
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) { setError($("export-error"), err); }
  });
}

// ---------------------------------------------------------------- keys
async function createKey() {
  setError($("key-error"), null);
  await busy($("key-create"), async () => {
    try {
      const k = await client.createApiKey();
      $("key-value").textContent = k.apiKey;
      show($("key-new"));
      $("key-status").textContent = `Created a key for ${k.username}.`;
    } catch (err) { setError($("key-error"), err); }
  });
}
async function revokeKey(ev) {
  ev.preventDefault();
  setError($("key-error"), null);
  const input = $("key-revoke-input");
  await busy(ev.submitter || $("key-revoke").querySelector("button"), async () => {
    try {
      await client.revokeApiKey(input.value.trim());
      input.value = "";
      if ($("key-value").textContent) { show($("key-new"), false); $("key-value").textContent = ""; }
      $("key-status").textContent = "The key is revoked.";
    } catch (err) { setError($("key-error"), err); }
  });
}
async function revokeAll() {
  try {
    await client.revokeAllApiKeys();
    $("key-status").textContent = "All your API keys are revoked. Keys in use elsewhere stop working now.";
  } catch (err) { setError($("key-error"), err); }
}

// ---------------------------------------------------------------- start
function wire() {
  $("endpoint").value = endpointSetting();
  for (const r of document.querySelectorAll("input[name=method]")) r.addEventListener("change", methodChanged);
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("db-create").addEventListener("submit", createDatabase);
  $("db-rename-btn").addEventListener("click", renameDatabase);
  $("db-privacy").addEventListener("click", togglePrivacy);
  armed($("db-delete"), "Really delete?", deleteDatabase);
  for (const t of document.querySelectorAll("[role=tab]")) t.addEventListener("click", () => selectTab(t));
  document.querySelector("[role=tablist]").addEventListener("keydown", tabKeys);
  $("run").addEventListener("click", runQuery);
  $("sql").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runQuery(); } });
  $("history").addEventListener("change", (e) => { if (e.target.value) { $("sql").value = e.target.value; $("sql").focus(); } });
  $("grid").querySelector(".grid-body").addEventListener("scroll", () => requestAnimationFrame(drawRows), { passive: true });
  $("chart-col").addEventListener("change", drawChart);
  const dz = $("dropzone");
  dz.addEventListener("click", () => $("import-file").click());
  dz.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("import-file").click(); } });
  dz.addEventListener("dragover", (e) => { e.preventDefault(); dz.classList.add("over"); });
  dz.addEventListener("dragleave", () => dz.classList.remove("over"));
  dz.addEventListener("drop", (e) => {
    e.preventDefault();
    dz.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) importFile(f);
  });
  $("import-file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) importFile(f); e.target.value = ""; });
  $("export-run").addEventListener("click", runExport);
  $("export-download").addEventListener("click", download);
  $("key-create").addEventListener("click", createKey);
  $("key-copy").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText($("key-value").textContent));
  $("key-revoke").addEventListener("submit", revokeKey);
  armed($("key-revoke-all"), "Really revoke all?", revokeAll);
  renderHistory();
}

async function start() {
  wire();
  try {
    bitkit = await load();
  } catch (err) {
    show($("loading"), false);
    $("fatal").textContent = `The bitkit client did not load: ${err.message}`;
    show($("fatal"));
    return;
  }
  show($("loading"), false);
  window.dashboardReady = true;
  show($("signin-view"));
}

start();
