// bitkit dashboard: a plain ES module on the wasm client (bitkit.mjs) and a
// CodeMirror editor (editor.js), bundled by esbuild (web/build.mjs, make web).
// Served by bitd at / (endpoint = same origin) or from any static host with
// ?endpoint=http://… or the endpoint field under Settings.
import { load } from "./bitkit.mjs";
import { createEditor, splitStatements } from "./editor.js";

const $ = (id) => document.getElementById(id);
const ROW_H = 28;
const ENDPOINT_KEY = "bitkit.dashboard.endpoint";
const SESSION_KEY = "bitkit.dashboard.session";
const historyKey = (db) => `bitkit.dashboard.history.${db}`;
// Numeric column types by OID: int8, int2, int4, oid, float4, float8, numeric.
const NUMERIC = new Set([20, 21, 23, 26, 700, 701, 1700]);
// Statements that return rows: they are streamed (NDJSON), the rest run as one call.
const ROWS_RE = /^\s*(\(?\s*select|with|values|table|show|explain)\b/i;

// The state, in one place.
const state = {
  bitkit: null,
  client: null,
  session: null, // {endpoint, apiKey} or {endpoint, username} (never a password)
  account: "",
  db: "",
  databases: [],
  result: null, // {columns, rows, total, capped, sql}
  exportResult: null,
  pendingImport: null, // {file, preview}
  editor: null,
  run: null, // AbortController of the query in flight
};

function show(el, on = true) { el.hidden = !on; }
function fmt(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "object") return JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x));
  return String(v);
}
function shortName(full) { return full.includes("/") ? full.slice(full.indexOf("/") + 1) : full; }
function plural(n, one, many = `${one}s`) { return `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`; }
function el(tag, props = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && k !== "role") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...kids.filter((k) => k !== null && k !== undefined));
  return e;
}

// ---------------------------------------------------------------- messages
// humanError turns an API error into sentences for a person: never a Go
// option or a CLI command (those are for programs and terminals).
function humanError(err) {
  if (!err) return "";
  let msg = err.message || String(err);
  if (err.code === "unauthorized" || err.status === 401) msg = "The API key or password was not accepted.";
  else if (err.code === "result_too_large") {
    const what = (/more than ([^,]+),/.exec(msg) || [])[1] || "what one answer may hold";
    msg = `The result has more than ${what}, so the server stopped it. Start the statement with SELECT or WITH so that the dashboard streams it, or use the Export tab.`;
  } else if (err.code === "buffer_limit_reached") {
    msg = "Your other large results are using the server's memory for answers right now. Run it again in a moment, or use the Export tab.";
  } else if (err.code === "network_error") {
    msg = `bitd did not answer at ${state.session ? state.session.endpoint : "this endpoint"}: check that it runs and that this page's origin is allowed.`;
  } else if (/With(APIKey|Token|Credentials)|`bit |bit [a-z]+ [a-z]+|--[a-z-]+=/.test(msg)) {
    msg = msg.replace(/\s*\(?(use|run|try)\b[^.]*(With(APIKey|Token|Credentials)|`bit |--)[^.]*\.?\)?/gi, "").trim() || "The request was refused.";
  }
  msg = msg.replace(/^bitkit: /, "");
  const parts = [msg.charAt(0).toUpperCase() + msg.slice(1)];
  if (err.detail) parts.push(`Detail: ${err.detail}`);
  if (err.hint) parts.push(`Hint: ${err.hint}`);
  if (err.sqlstate) parts.push(`SQLSTATE ${err.sqlstate}`);
  if (err.requestId) parts.push(`Request ID: ${err.requestId}`);
  return parts.join("\n");
}
function setError(box, err) {
  box.textContent = err ? (typeof err === "string" ? err : humanError(err)) : "";
  show(box, !!err);
}
function setStatus(box, text, ok = false) {
  box.textContent = text || "";
  box.classList.toggle("ok", ok);
}

// act runs one user action: the button is busy, the action's old message
// and error are cleared, a 401 signs out with a sentence, other errors land
// in the action's own error box.
async function act(btn, { status, error }, fn) {
  if (btn) btn.disabled = true;
  if (status) setStatus(status, "");
  if (error) setError(error, null);
  try {
    return await fn();
  } catch (err) {
    if (err && (err.status === 401 || err.code === "unauthorized") && state.client) {
      signedOut("Your session ended: the key or sign-in was revoked or expired. Sign in again.", true);
      return undefined;
    }
    if (error) setError(error, err);
    else throw err;
    return undefined;
  } finally {
    if (btn) btn.disabled = false;
  }
}

// ---------------------------------------------------------------- sign in
function endpointSetting() {
  const q = new URLSearchParams(location.search).get("endpoint");
  if (q) return q;
  return localStorage.getItem(ENDPOINT_KEY) || (location.protocol.startsWith("http") ? location.origin : "");
}
function method() { return document.querySelector("input[name=method]:checked").value; }
function methodChanged() {
  for (const e of document.querySelectorAll("[data-method]")) show(e, e.dataset.method === method());
}
function savedSession() {
  for (const store of [sessionStorage, localStorage]) {
    try { const s = JSON.parse(store.getItem(SESSION_KEY)); if (s && s.endpoint) return s; } catch { /* ignore a damaged entry */ }
  }
  return null;
}
function forgetSession() { sessionStorage.removeItem(SESSION_KEY); localStorage.removeItem(SESSION_KEY); }

async function signIn(ev) {
  ev.preventDefault();
  const btn = ev.submitter || $("signin").querySelector("button[type=submit]");
  show($("signin-notice"), false);
  const endpoint = $("endpoint").value.trim().replace(/\/+$/, "");
  const remember = $("remember").checked;
  const session = { endpoint };
  const opts = { endpoint };
  if (method() === "key") {
    opts.apiKey = session.apiKey = $("apikey").value.trim();
    if (!opts.apiKey) { setError($("signin-error"), "Enter an API key (it starts with v2_), or sign in with a username and password."); $("apikey").focus(); return; }
  } else {
    opts.username = session.username = $("username").value.trim();
    opts.password = $("password").value;
    if (!opts.username || !opts.password) { setError($("signin-error"), "Enter your username and password."); return; }
  }
  await act(btn, { error: $("signin-error") }, async () => {
    const c = state.bitkit.createClient(opts);
    const acct = await c.account();
    // A password sign-in keeps its access token, never the password: a reload signs in with it.
    if (method() !== "key") session.token = await c.accessToken();
    localStorage.setItem(ENDPOINT_KEY, endpoint);
    forgetSession();
    (remember ? localStorage : sessionStorage).setItem(SESSION_KEY, JSON.stringify(session));
    $("password").value = "";
    $("apikey").value = "";
    await enter(c, acct.name, session);
  });
}

// resume signs back in from the saved session after a reload.
async function resume() {
  const s = savedSession();
  if (!s) return false;
  // The password is never stored: without a key or a session token, ask for it again, the rest filled in.
  const askPassword = (notice, warn = false) => {
    document.querySelector("input[name=method][value=password]").checked = true;
    methodChanged();
    $("username").value = s.username || "";
    $("signin-notice").textContent = notice;
    $("signin-notice").classList.toggle("warn", warn);
    show($("signin-notice"));
    return false;
  };
  if (!s.apiKey && !s.token) return askPassword("Enter your password to continue.");
  try {
    const c = state.bitkit.createClient(s.apiKey ? { endpoint: s.endpoint, apiKey: s.apiKey } : { endpoint: s.endpoint, token: s.token });
    const acct = await c.account();
    await enter(c, acct.name, s);
    return true;
  } catch (err) {
    forgetSession();
    // An expired or revoked session token (401): back to the password, with a sentence.
    if (s.token && err && (err.status === 401 || err.code === "unauthorized")) return askPassword("Your session has ended; sign in again.", true);
    return false;
  }
}

async function enter(c, name, session) {
  state.client = c;
  state.session = session;
  state.account = name;
  $("who").textContent = `${name} @ ${c.endpoint}`;
  show($("signout"));
  show($("signin-view"), false);
  show($("app-view"));
  state.db = sessionStorage.getItem("bitkit.dashboard.db") || "";
  state.schemaFor = "";
  await refreshDatabases();
  if (state.client) selectDatabase(state.db);
}

// signedOut returns to the sign-in screen with an optional explanation.
// signedOut shows the sign-in form with notice; warn marks bad news (the
// session ended against the person's will), drawn in the warning colour.
function signedOut(notice, warn = false) {
  const c = state.client;
  state.client = null;
  state.session = null;
  state.db = "";
  state.result = null;
  forgetSession();
  if (c) c.logout().catch(() => { /* the token may already be gone */ });
  $("who").textContent = "";
  show($("signout"), false);
  show($("app-view"), false);
  show($("signin-view"));
  $("signin-notice").textContent = notice || "";
  $("signin-notice").classList.toggle("warn", warn);
  show($("signin-notice"), !!notice);
  setError($("signin-error"), null);
  $("apikey").focus();
}

// ---------------------------------------------------------------- databases
async function refreshDatabases() {
  const list = await act(null, { error: $("db-error") }, () => state.client.listDatabases());
  if (!list || !state.client) return;
  state.databases = list.sort((a, b) => a.name.localeCompare(b.name));
  if (state.db && !list.some((d) => d.name === state.db)) state.db = "";
  if (!state.db && list.length) state.db = list[0].name;
  renderDatabases();
}
function renderDatabases() {
  const ul = $("db-list");
  ul.removeAttribute("aria-busy");
  ul.replaceChildren(...state.databases.map((d) => el("li", { "aria-current": String(d.name === state.db) },
    el("button", { type: "button", class: "link", textContent: d.name, onclick: () => selectDatabase(d.name) }),
    el("span", { class: "tags" }, el("span", { class: "tag", textContent: d.isPrivate ? "private" : "public" }),
      d.role && d.role !== "OWNER" ? el("span", { class: "tag", textContent: ROLE_WORDS[d.role] || d.role.toLowerCase() }) : null))));
  if (!state.databases.length) ul.replaceChildren(el("li", { class: "muted", textContent: "No databases yet." }));
  const db = state.databases.find((d) => d.name === state.db);
  $("current-db").textContent = db ? db.name : "No database selected";
  // Renaming, privacy and deleting need OWNER or ADMIN: others do not get the buttons.
  show($("db-actions"), canManage(db));
  show($("db-empty"), !db);
  if (db) {
    // A toggle button: its label stays "Private", aria-pressed says whether it is on.
    $("db-privacy").setAttribute("aria-pressed", String(db.isPrivate));
    $("db-privacy").title = db.isPrivate ? "Private: press to make it public" : "Public: press to make it private";
    $("db-rename").value = shortName(db.name);
  }
}
// selectDatabase switches the workbench to another database: its grid,
// errors and history are its own.
function selectDatabase(name) {
  if (name === state.db && state.schemaFor === name) return;
  if (state.run) state.run.abort();
  state.db = name;
  sessionStorage.setItem("bitkit.dashboard.db", name);
  state.result = null;
  renderResult();
  for (const id of ["query-error", "db-error", "export-error"]) setError($(id), null);
  for (const id of ["query-status", "import-status", "export-status"]) setStatus($(id), "");
  show($("import-error"), false);
  show($("export-download"), false);
  discardImport();
  renderDatabases();
  renderHistory();
  loadSchema();
  if (!$("panel-sharing").hidden) loadSharing();
}

async function createDatabase(ev) {
  ev.preventDefault();
  const name = $("db-name").value.trim();
  if (!/^[A-Za-z0-9_-]+$/.test(name)) { setError($("db-error"), "A database name uses letters, digits, _ and - only."); return; }
  await act(ev.submitter, { error: $("db-error") }, async () => {
    const db = await state.client.createDatabase(name, { isPrivate: $("db-private").checked });
    $("db-name").value = "";
    await refreshDatabases();
    selectDatabase(db.name);
  });
}
async function renameDatabase() {
  const name = $("db-rename").value.trim();
  if (!name || name === shortName(state.db)) return;
  await act($("db-rename-btn"), { error: $("db-error") }, async () => {
    const db = await state.client.updateDatabase(state.db, { name });
    state.db = db.name;
    await refreshDatabases();
  });
}
async function togglePrivacy() {
  const db = state.databases.find((d) => d.name === state.db);
  if (!db) return;
  await act($("db-privacy"), { error: $("db-error") }, async () => {
    await state.client.updateDatabase(state.db, { isPrivate: !db.isPrivate });
    await refreshDatabases();
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
    await fn();
  });
}
async function deleteDatabase() {
  await act($("db-delete"), { error: $("db-error") }, async () => {
    await state.client.deleteDatabase(state.db);
    state.db = "";
    await refreshDatabases();
    selectDatabase(state.db);
  });
}

// ---------------------------------------------------------------- schema
const SCHEMA_SQL = `select n.nspname, c.relname, c.relkind::text, greatest(c.reltuples::int8, coalesce(s.n_live_tup, 0), 0),
  a.attname, format_type(a.atttypid, a.atttypmod)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_user_tables s on s.relid = c.oid
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'
order by 1, 2, a.attnum`;

async function loadSchema() {
  const box = $("schema");
  if (!state.db) { box.replaceChildren(el("p", { class: "muted small", textContent: "Select a database." })); return; }
  const db = state.db;
  state.schemaFor = db;
  box.setAttribute("aria-busy", "true");
  const r = await act($("schema-refresh"), { error: $("schema-error") }, () => state.client.query(db, SCHEMA_SQL));
  box.removeAttribute("aria-busy");
  if (!r || db !== state.db) return;
  const tree = new Map(); // schema → table → {kind, est, cols}
  for (const [ns, rel, kind, est, col, type] of r.rows) {
    if (!tree.has(ns)) tree.set(ns, new Map());
    const t = tree.get(ns);
    if (!t.has(rel)) t.set(rel, { kind, est: Number(est), cols: [] });
    if (col !== null) t.get(rel).cols.push([col, type]);
  }
  const completion = {};
  for (const [ns, tables] of tree) for (const [rel, t] of tables) {
    const cols = t.cols.map(([c]) => c);
    completion[`${ns}.${rel}`] = cols;
    if (ns === "public") completion[rel] = cols;
  }
  state.editor.setSchema(completion);
  if (!tree.size) { box.replaceChildren(el("p", { class: "empty small", textContent: "No tables yet: create one with SQL or import a file." })); return; }
  box.replaceChildren(...[...tree].map(([ns, tables]) => el("details", { open: true },
    el("summary", { textContent: ns }),
    ...[...tables].map(([rel, t]) => {
      const kind = { v: "view", m: "materialized view", f: "foreign table" }[t.kind] || "table";
      return el("details", { class: "rel" },
        el("summary", {}, el("span", { class: "tbl" }, el("span", { textContent: rel }),
          el("span", { class: "est", textContent: kind !== "table" ? kind : t.est > 0 ? `~${t.est.toLocaleString("en-US")} rows` : "" }))),
        el("button", { type: "button", class: "link small", textContent: `Preview ${rel}`, "aria-label": `Preview 100 rows of ${ns}.${rel}`,
          onclick: () => previewTable(ns, rel) }),
        el("ul", {}, ...t.cols.map(([c, type]) => el("li", {}, el("span", { textContent: c }), el("span", { class: "type", textContent: type })))));
    }))));
}
function quoteIdent(s) { return /^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`; }
function previewTable(ns, rel) {
  const sql = `select * from ${ns === "public" ? "" : `${quoteIdent(ns)}.`}${quoteIdent(rel)} limit 100`;
  state.editor.value = sql;
  selectTab($("tab-sql"));
  runQuery({ text: sql, from: 0 });
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
  if (tab.id === "tab-keys") loadKeys();
  if (tab.id === "tab-sharing") loadSharing();
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
  try { return JSON.parse(localStorage.getItem(historyKey(state.db))) || []; } catch { return []; }
}
function remember(sql) {
  const h = [sql, ...history().filter((s) => s !== sql)].slice(0, 30);
  localStorage.setItem(historyKey(state.db), JSON.stringify(h));
  renderHistory();
}
function renderHistory() {
  const sel = $("history");
  sel.replaceChildren(sel.options[0], ...history().map((s) => el("option", { value: s, textContent: s.length > 80 ? `${s.slice(0, 77)}…` : s })));
  sel.value = "";
}

// summary is the psql-style command tag of a statement without rows.
function summary(r, sql) {
  const verb = (r.command || sql.trim().split(/\s+/)[0]).toUpperCase();
  if (verb === "INSERT") return `INSERT 0 ${r.rowCount}`;
  if (["UPDATE", "DELETE", "SELECT", "MERGE", "COPY", "FETCH", "MOVE"].includes(verb)) return `${verb} ${r.rowCount}`;
  const words = sql.trim().split(/\s+/).slice(0, 2).join(" ").toUpperCase();
  return /^(CREATE|DROP|ALTER) [A-Z]+$/.test(words) ? words : verb;
}
function rowCap() { return Math.max(100, Number($("row-cap").value) || 100000); }

async function runQuery(stmt) {
  const { text: sql, from } = stmt || state.editor.current();
  if (!sql) { setError($("query-error"), "Write a statement first."); return; }
  if (!state.db) { setError($("query-error"), "Create or select a database first."); return; }
  state.editor.markError(null);
  if (state.run) state.run.abort();
  const ac = new AbortController();
  state.run = ac;
  const db = state.db;
  show($("cancel"));
  $("cancel").onclick = () => ac.abort();
  const t0 = performance.now();
  setStatus($("query-status"), "Running…");
  await act($("run"), { error: $("query-error") }, async () => {
    try {
      let res;
      const parts = splitStatements(sql);
      if (parts.length > 1) {
        // A selection of several statements runs as one transaction: all or nothing.
        const all = await state.client.batch(db, parts, { signal: ac.signal });
        const r = all[all.length - 1];
        res = { columns: r.columns, rows: r.rows, total: r.rows.length, capped: false, sql, rowsResult: r.columns.length > 0 };
        res.summary = `${parts.length} statements in one transaction, the last: ${summary(r, parts[parts.length - 1])}`;
        loadSchema();
      } else if (ROWS_RE.test(sql)) {
        const cap = rowCap();
        res = { columns: [], rows: [], total: 0, capped: false, sql, rowsResult: true };
        // Rows arrive in batches (onRows): one call per batch, not per row.
        // Each batch is one message from the Worker, so the page draws
        // between batches; the grid and the count follow once per frame.
        let queued = false;
        const paint = () => {
          if (queued) return;
          queued = true;
          requestAnimationFrame(() => {
            queued = false;
            if (state.result === res && state.run === ac) { growGrid(); setStatus($("query-status"), `${res.total.toLocaleString("en-US")} rows so far…`); }
          });
        };
        const out = await state.client.queryStream(db, sql, [], {
          onRows: (rows, cols) => {
            if (res.total === 0) { res.columns = cols; state.result = res; renderResult(); }
            res.total += rows.length;
            const room = cap - res.rows.length;
            if (rows.length <= room) for (const row of rows) res.rows.push(row);
            else { for (let i = 0; i < room; i++) res.rows.push(rows[i]); res.capped = true; }
            paint();
          },
        }, { signal: ac.signal });
        res.columns = out.columns;
        res.total = out.rowCount;
        res.summary = `SELECT ${out.rowCount}`;
      } else {
        const r = await state.client.query(db, sql, [], { signal: ac.signal });
        res = { columns: r.columns, rows: r.rows, total: r.rows.length, capped: false, sql, rowsResult: r.columns.length > 0 };
        res.summary = summary(r, sql);
        if (/^\s*(create|drop|alter|comment)\b/i.test(sql)) loadSchema();
      }
      if (db !== state.db) return;
      const ms = Math.round(performance.now() - t0);
      remember(sql);
      state.result = res;
      renderResult();
      const shown = res.capped ? ` · showing the first ${res.rows.length.toLocaleString("en-US")}` : "";
      setStatus($("query-status"), `${res.summary} · ${ms.toLocaleString("en-US")} ms${shown}`, true);
    } catch (err) {
      if (err.code === "canceled") { setStatus($("query-status"), "Canceled."); return; }
      setStatus($("query-status"), "");
      // The grid of an earlier statement would read as this one's result.
      if (db === state.db) { state.result = null; renderResult(); }
      if (err.position > 0 && splitStatements(sql).length === 1) state.editor.markError(from + err.position - 1, err.message);
      throw err;
    } finally {
      if (state.run === ac) { state.run = null; show($("cancel"), false); }
    }
  });
}

// The grid renders only the rows in view (plus a margin), so 100k rows
// scroll smoothly: the spacer has the full height, rows are positioned in it.
function renderResult() {
  const r = state.result;
  const hasRows = !!r && r.rowsResult !== false && r.columns.length > 0;
  show($("grid"), hasRows);
  show($("result-tools"), hasRows);
  show($("export-full"), hasRows && r.capped);
  const head = $("grid").querySelector(".grid-head");
  const cols = hasRows ? r.columns : [];
  const template = cols.map((c) => (NUMERIC.has(c.typeOid) ? "minmax(6rem, max-content)" : "minmax(9rem, max-content)")).join(" ");
  head.style.gridTemplateColumns = template;
  state.template = template;
  head.replaceChildren(...cols.map((c) => el("div", { role: "columnheader", class: NUMERIC.has(c.typeOid) ? "num" : "", title: `${c.name} (${c.type})` },
    c.name, el("span", { class: "t", textContent: c.type }))));
  $("grid").setAttribute("aria-colcount", String(cols.length));
  $("grid").querySelector(".grid-body").scrollTop = 0;
  state.drawn = null;
  growGrid();
  renderChartOptions();
}
function growGrid() {
  const r = state.result;
  const n = r && r.columns.length ? r.rows.length : 0;
  $("grid").setAttribute("aria-rowcount", String(n + 1));
  $("grid").querySelector(".grid-spacer").style.height = `${n * ROW_H}px`;
  drawRows();
}
function drawRows() {
  const body = $("grid").querySelector(".grid-body");
  const spacer = body.querySelector(".grid-spacer");
  const r = state.result;
  if (!r || !r.columns.length) { spacer.replaceChildren(); state.drawn = null; return; }
  const headH = body.querySelector(".grid-head").offsetHeight;
  const top = Math.max(0, body.scrollTop - headH);
  const first = Math.max(0, Math.floor(top / ROW_H) - 10);
  const last = Math.min(r.rows.length, Math.ceil((top + body.clientHeight) / ROW_H) + 10);
  // The same rows in view: keep the nodes (a click on a cell survives a small scroll).
  const key = `${first}:${last}:${r.rows.length}`;
  if (state.drawn && state.drawn.r === r && state.drawn.key === key) return;
  state.drawn = { r, key };
  const num = r.columns.map((c) => NUMERIC.has(c.typeOid));
  const width = body.querySelector(".grid-head").scrollWidth;
  const out = [];
  for (let i = first; i < last; i++) {
    const row = el("div", { class: "grid-row", role: "row", "aria-rowindex": String(i + 2) });
    row.style.top = `${i * ROW_H}px`;
    row.style.gridTemplateColumns = state.template;
    row.style.width = `${width}px`;
    r.rows[i].forEach((v, j) => {
      const s = fmt(v);
      const cell = el("div", { role: "gridcell", class: s === null ? "null" : num[j] ? "num" : "", textContent: s === null ? "NULL" : s });
      if (s !== null && s.length > 20) cell.title = s;
      row.append(cell);
    });
    out.push(row);
  }
  spacer.replaceChildren(...out);
  // Header and row columns share widths: size the header cells like the first row's.
  if (out.length) syncWidths(out[0]);
}
function syncWidths(row) {
  const head = $("grid").querySelector(".grid-head");
  const widths = [...row.children].map((c, i) => Math.max(c.scrollWidth + 1, head.children[i] ? head.children[i].scrollWidth : 0));
  const t = widths.map((w) => `${Math.min(w, 420)}px`).join(" ");
  if (t !== state.template) {
    state.template = t;
    head.style.gridTemplateColumns = t;
    for (const r of row.parentElement.children) { r.style.gridTemplateColumns = t; r.style.width = `${head.scrollWidth}px`; }
  }
}
async function copyCell(ev) {
  const cell = ev.target.closest("[role=gridcell]");
  if (!cell) return;
  const text = cell.classList.contains("null") ? "" : cell.textContent;
  try {
    await navigator.clipboard.writeText(text);
    setStatus($("query-status"), `Copied “${text.length > 40 ? `${text.slice(0, 37)}…` : text}”.`, true);
  } catch {
    setStatus($("query-status"), "The browser did not allow copying to the clipboard.");
  }
}

// downloadShown saves the rows in the grid as CSV or JSON.
function downloadShown(kind) {
  const r = state.result;
  if (!r) return;
  const names = r.columns.map((c) => c.name);
  let body;
  if (kind === "csv") {
    const q = (s) => (s === null ? "" : /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
    body = [names.map(q).join(","), ...r.rows.map((row) => row.map((v) => q(fmt(v))).join(","))].join("\n") + "\n";
  } else {
    body = JSON.stringify(r.rows.map((row) => Object.fromEntries(row.map((v, i) => [names[i], typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v]))), null, 1);
  }
  saveBlob(new Blob([body], { type: kind === "csv" ? "text/csv" : "application/json" }), `result.${kind}`);
}
function saveBlob(blob, name) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
function exportFull() {
  $("export-query").value = state.result.sql;
  $("export-table").value = "";
  selectTab($("tab-export"));
  runExport();
}

// The chart: the last numeric column that is not an id, over the first text
// column as labels; never drawn for results without numbers.
function renderChartOptions() {
  const r = state.result;
  const cols = r ? r.columns.map((c, i) => ({ c, i })).filter(({ c }) => NUMERIC.has(c.typeOid)) : [];
  const on = cols.length > 0 && r.rows.length > 1;
  show($("chart-box"), on);
  const sel = $("chart-col");
  sel.replaceChildren(...cols.map(({ c, i }) => el("option", { value: String(i), textContent: c.name })));
  if (!on) return;
  const pick = cols.filter(({ c }) => !/^(id|.*_id)$/i.test(c.name)).pop() || cols[cols.length - 1];
  sel.value = String(pick.i);
  drawChart();
}
function drawChart() {
  const svg = $("chart");
  const r = state.result;
  const idx = Number($("chart-col").value);
  if (!r || Number.isNaN(idx) || !r.columns[idx]) { svg.replaceChildren(); return; }
  const W = 800, H = 240, pad = 30;
  const n = r.rows.length;
  const step = Math.max(1, Math.ceil(n / 400));
  const vals = [];
  for (let i = 0; i < n; i += step) { const v = r.rows[i][idx]; vals.push(v === null ? 0 : Number(v)); }
  const max = Math.max(0, ...vals), min = Math.min(0, ...vals);
  const span = max - min || 1;
  const bw = (W - pad) / vals.length;
  const y = (v) => H - pad - ((v - min) / span) * (H - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const parts = [svgEl("line", { class: "axis", x1: pad, y1: y(0), x2: W, y2: y(0) }),
    svgEl("text", { x: 2, y: y(max) + 4 }, String(+max.toPrecision(4))),
    svgEl("text", { x: 2, y: y(min) }, String(+min.toPrecision(4)))];
  vals.forEach((v, i) => {
    const top = Math.min(y(v), y(0));
    parts.push(svgEl("rect", { class: "bar", x: pad + i * bw, y: top, width: Math.max(bw - 1, 0.5), height: Math.max(Math.abs(y(v) - y(0)), 0.5) }));
  });
  svg.setAttribute("aria-label", `Bar chart of ${r.columns[idx].name}: ${vals.length} values from ${min} to ${max}`);
  svg.replaceChildren(...parts);
}

// ---------------------------------------------------------------- import
const MODE_HELP = {
  create: "Create: a new table is made from the file; if the table already exists, nothing is imported.",
  append: "Append: the rows are added to the existing table (created if it does not exist); the file's columns must match the table's.",
  replace: "Replace: the table's rows are deleted and the file's rows loaded in their place, in one transaction; the table keeps its columns, indexes, constraints and grants, and the file's columns must match them. If the import fails, the old rows stay as they were.",
};
function importMode() { return document.querySelector("input[name=import-mode]:checked").value; }
function modeChanged() { $("import-mode-help").textContent = MODE_HELP[importMode()]; }

// inferType names the PostgreSQL type a column of sample values looks like.
function inferType(vals) {
  const v = vals.filter((s) => s !== "");
  if (!v.length) return "text";
  if (v.every((s) => /^[-+]?\d{1,18}$/.test(s))) return v.every((s) => Math.abs(Number(s)) < 2 ** 31) ? "integer" : "bigint";
  if (v.every((s) => /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s))) return "numeric";
  if (v.every((s) => /^(true|false|t|f|yes|no)$/i.test(s))) return "boolean";
  if (v.every((s) => /^\d{4}-\d{2}-\d{2}$/.test(s))) return "date";
  if (v.every((s) => /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}/.test(s))) return "timestamp";
  return "text";
}
// parseCSV reads the rows of a CSV (or TSV) sample; the last, cut-off line is dropped.
function parseCSV(text, sep) {
  const rows = [];
  let row = [], cell = "", q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') q = false; else cell += c;
    } else if (c === '"') q = true;
    else if (c === sep) { row.push(cell); cell = ""; } else if (c === "\n") { row.push(cell.replace(/\r$/, "")); rows.push(row); row = []; cell = ""; } else cell += c;
  }
  return rows;
}
async function previewFile(file) {
  discardImport();
  show($("import-error"), false);
  setStatus($("import-status"), "");
  const head = await file.slice(0, 256 * 1024).text();
  const name = file.name.toLowerCase();
  let cols = [], rows = [], note;
  if (/\.(csv|tsv|txt)$/.test(name) || file.type.startsWith("text/")) {
    const sep = name.endsWith(".tsv") ? "\t" : [",", ";", "\t"].sort((a, b) => head.split(b).length - head.split(a).length)[0];
    const all = parseCSV(file.size <= head.length ? `${head}\n` : head, sep);
    const header = $("import-header").value;
    const first = all[0] || [];
    const looksHeader = header === "first_row" || (header === "auto" && first.every((s) => inferType([s]) === "text") && all.length > 1 && all[1].some((s) => inferType([s]) !== "text"));
    const body = looksHeader ? all.slice(1) : all;
    cols = (looksHeader ? first : first.map((_, i) => `column${i + 1}`)).map((n, i) => ({ name: n, type: inferType(body.slice(0, 1000).map((r) => r[i] ?? "")) }));
    rows = body.slice(0, 10);
    note = `${file.name}, ${file.size.toLocaleString("en-US")} bytes: the first ${plural(rows.length, "row")} and the column types they suggest (the server decides the final types from the whole file).`;
  } else if (/\.(json|ndjson|jsonl)$/.test(name)) {
    try {
      const lines = head.split("\n").filter((l) => l.trim());
      let objs = name.endsWith(".json") && head.trim().startsWith("[") && file.size <= head.length ? JSON.parse(head) : lines.slice(0, 11).map((l) => JSON.parse(l));
      objs = objs.slice(0, 10);
      const names = [...new Set(objs.flatMap((o) => Object.keys(o)))];
      cols = names.map((n) => ({ name: n, type: inferType(objs.map((o) => (o[n] === undefined || o[n] === null ? "" : String(o[n])))) }));
      rows = objs.map((o) => names.map((n) => (o[n] === undefined || o[n] === null ? "" : typeof o[n] === "object" ? JSON.stringify(o[n]) : String(o[n]))));
      note = `${file.name}: the first ${plural(rows.length, "record")}.`;
    } catch { note = `${file.name}: no preview for this JSON layout; the server reads it on import.`; }
  } else {
    note = `${file.name} (${file.size.toLocaleString("en-US")} bytes): a preview is shown for CSV and JSON files; the server reads this format on import.`;
  }
  state.pendingImport = { file };
  $("preview-note").textContent = note;
  $("preview-table").replaceChildren(
    el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { scope: "col" }, c.name, el("span", { class: "t", textContent: c.type }))))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((_, i) => el("td", { textContent: r[i] ?? "" }))))));
  show($("import-preview"));
  $("import-go").textContent = `Import into ${$("import-table").value.trim() || "…"}`;
  $("import-go").focus();
}
function discardImport() {
  state.pendingImport = null;
  show($("import-preview"), false);
}

async function tableExists(db, table) {
  const r = await state.client.query(db, "select to_regclass($1) is not null as present", [table]);
  return r.rows[0][0] === true;
}
async function importFile() {
  const pending = state.pendingImport;
  if (!pending) return;
  const table = $("import-table").value.trim();
  const mode = importMode();
  const bar = $("import-progress");
  const status = $("import-status");
  show($("import-error"), false);
  if (!table) { showImportError({ message: "Name the table to import into." }); return; }
  if (!state.db) { showImportError({ message: "Create or select a database first." }); return; }
  const db = state.db;
  await act($("import-go"), { status }, async () => {
    try {
      const exists = await tableExists(db, table);
      if (mode === "create" && exists) throw new Error(`The table ${table} already exists: choose Append to add the rows to it, or Replace to load the file in place of its rows.`);
      if (mode === "replace" && !exists) throw new Error(`There is no table ${table} to replace: choose Create.`);
      bar.value = 0;
      show(bar);
      show($("import-preview"), false);
      setStatus(status, `Uploading ${pending.file.name} (${pending.file.size.toLocaleString("en-US")} bytes)…`);
      // One bar across both phases: the upload fills the first half, the job's loading pass the second.
      // Replace is done by the server: TRUNCATE and load in one transaction.
      const job = await state.client.importFile(db, pending.file, {
        table, inferHeader: $("import-header").value, ifExists: mode === "replace" ? "replace" : "append",
        onProgress: (e) => {
          if (e.phase === "upload") bar.value = Math.min(50, (e.loaded / (e.total || 1)) * 50);
          else if (e.phase === "job") {
            const p = e.job.progress;
            if (p && p.bytesTotal) bar.value = Math.max(bar.value, 50 + (p.bytesDone / p.bytesTotal) * 50);
            else bar.value = Math.max(bar.value, 50);
            setStatus(status, `Loading: ${e.job.state.toLowerCase()}${p && p.rows ? ` · ${plural(p.rows, "row")}` : ""}…`);
          }
        },
      });
      bar.value = 100;
      const rows = job.progress && job.progress.rows ? plural(job.progress.rows, "row") : "the rows";
      setStatus(status, `Imported ${rows} into ${table} (${{ create: "created", append: "appended", replace: "replaced" }[mode]}).`, true);
      state.pendingImport = null;
      if (db === state.db) loadSchema();
    } catch (err) {
      show(bar, false);
      setStatus(status, ""); // the failure view below says what happened
      if (err && (err.status === 401 || err.code === "unauthorized")) throw err;
      showImportError(err);
    }
  });
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
    fields.push(["Message", humanError(err)]);
    if (err.code) fields.push(["Code", err.code]);
    if (err.status) fields.push(["HTTP status", String(err.status)]);
  }
  $("import-error-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]));
  show(box);
}

// ---------------------------------------------------------------- export
async function runExport() {
  if (!state.db) { setError($("export-error"), "Create or select a database first."); return; }
  show($("export-download"), false);
  state.exportResult = null;
  const query = $("export-query").value.trim();
  const table = $("export-table").value.trim();
  if (!query && !table) { setError($("export-error"), "Write a query or name a table to export."); return; }
  const format = $("export-format").value;
  const base = (table || "export").replace(/[^A-Za-z0-9_-]/g, "_");
  const ext = { csv: "csv", json: "json", xls: "xlsx", parquet: "parquet" }[format];
  show($("export-progress"));
  await act($("export-run"), { status: $("export-status"), error: $("export-error") }, async () => {
    setStatus($("export-status"), "Exporting…");
    try {
      state.exportResult = await state.client.exportData(state.db, {
        ...(query ? { query } : { table }), format, fileName: `${base}.${ext}`,
        onProgress: (e) => { if (e.phase === "job") setStatus($("export-status"), `Exporting: ${e.job.state.toLowerCase()}…`); },
      });
      setStatus($("export-status"), `${state.exportResult.job.fileName || `${base}.${ext}`} is ready.`, true);
      show($("export-download"));
    } catch (err) {
      setStatus($("export-status"), "");
      if (err.job) throw Object.assign(new Error(`The export failed (${err.job.errorType}).`), { detail: (err.job.errorDetails && err.job.errorDetails.message) || "" });
      throw err;
    } finally {
      show($("export-progress"), false);
    }
  });
}
async function download() {
  if (!state.exportResult) return;
  await act($("export-download"), { error: $("export-error") }, async () => {
    saveBlob(await state.exportResult.download(), state.exportResult.job.fileName || "export");
  });
}

// ---------------------------------------------------------------- keys
// The key and service-account lists, read through the wasm client like
// everything else, so they work for any sign-in (API key or password).
async function listKeys() {
  const [keys, sas] = await Promise.all([state.client.listApiKeys(), state.client.listServiceAccounts()]);
  return [keys, sas.map((s) => ({ name: s.name, role: s.role, databases: s.databases || [], live: s.activeTokenCount }))];
}
function when(iso) { return iso ? new Date(iso).toLocaleString() : "never"; }
async function loadKeys() {
  const table = $("key-table");
  const sa = $("sa-table");
  await act(null, { error: $("key-error") }, async () => {
    const [keys, sas] = await listKeys();
    table.replaceChildren(el("thead", {}, el("tr", {}, ...["Key", "Created", "Last used", ""].map((h) => el("th", { scope: "col", textContent: h })))),
      el("tbody", {}, ...keys.map((k) => el("tr", {},
        el("td", { textContent: k.current ? `${k.label} (this session)` : k.label }),
        el("td", { textContent: when(k.dateCreated) }),
        el("td", { textContent: when(k.lastUsed) }),
        el("td", {}, el("button", { type: "button", class: "danger small", textContent: "Revoke", "aria-label": `Revoke ${k.label}`,
          onclick: (ev) => revokeById(ev.currentTarget, k) }))))));
    if (!keys.length) table.replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "muted", textContent: "No live keys." }))));
    sa.replaceChildren(el("thead", {}, el("tr", {}, ...["Service account", "Role", "Databases", "Live keys"].map((h) => el("th", { scope: "col", textContent: h })))),
      el("tbody", {}, ...sas.map((s) => el("tr", {}, el("td", { textContent: s.name }), el("td", { textContent: s.role }),
        el("td", { textContent: s.databases.map((d) => d.name).join(", ") || "—" }), el("td", { textContent: String(s.live) })))));
    if (!sas.length) sa.replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "muted", textContent: "No service accounts yet." }))));
  });
}
async function revokeById(btn, k) {
  await act(btn, { status: $("key-status"), error: $("key-error") }, async () => {
    try {
      await state.client.revokeApiKeyById(k.id);
    } catch (err) {
      if (err.status === 404) throw new Error("That key is not one of your live keys (it may be revoked already).");
      throw err;
    }
    if (k.current) { signedOut("You revoked the key this session used, so you are signed out. Sign in with another key.", true); return; }
    setStatus($("key-status"), `${k.label} is revoked.`, true);
    await loadKeys();
  });
}
async function createKey() {
  await act($("key-create"), { status: $("key-status"), error: $("key-error") }, async () => {
    const k = await state.client.createApiKey();
    $("key-value").textContent = k.apiKey;
    show($("key-new"));
    setStatus($("key-status"), `Created a key for ${k.username}. Copy it now: it is not shown again.`, true);
    await loadKeys();
  });
}
async function revokeKey(ev) {
  ev.preventDefault();
  const input = $("key-revoke-input");
  const key = input.value.trim();
  if (!key) { setError($("key-error"), "Paste the key to revoke (it starts with v2_)."); return; }
  await act(ev.submitter, { status: $("key-status"), error: $("key-error") }, async () => {
    try {
      await state.client.revokeApiKey(key);
    } catch (err) {
      if (err.status === 404) throw new Error("No live key of yours matches what you pasted: it may be revoked already, or belong to someone else.");
      throw err;
    }
    input.value = "";
    if ($("key-value").textContent === key) { show($("key-new"), false); $("key-value").textContent = ""; }
    if (state.session && state.session.apiKey === key) { signedOut("You revoked the key this session used, so you are signed out.", true); return; }
    setStatus($("key-status"), "The key is revoked.", true);
    await loadKeys();
  });
}
async function revokeAll() {
  await act($("key-revoke-all"), { error: $("key-error") }, async () => {
    await state.client.revokeAllApiKeys();
    signedOut("All your API keys are revoked, including the one this session used, so you are signed out. Sign in with your username and password, or with a key an administrator creates for you.", true);
  });
}

// ---------------------------------------------------------------- sharing
// A database's owners and admins share it with other users as readers,
// writers or admins; everyone else sees their own role only.
const ROLE_WORDS = { OWNER: "owner", ADMIN: "admin", WRITER: "writer", READER: "reader" };
const ROLE_OPTIONS = [["READER", "Reader"], ["WRITER", "Writer"], ["ADMIN", "Admin"]];
function canManage(db) { return !!db && (db.role === "OWNER" || db.role === "ADMIN"); }
async function loadSharing() {
  const db = state.databases.find((d) => d.name === state.db);
  const intro = $("share-intro");
  const manage = canManage(db);
  show($("share-form"), manage);
  show($("share-people"), manage);
  setError($("share-error"), null);
  if (!db) { intro.textContent = "Select a database."; return; }
  if (!manage) {
    intro.textContent = `You are a ${ROLE_WORDS[db.role] || db.role} of ${db.name}. Only its owners and admins see and change who it is shared with.`;
    return;
  }
  intro.textContent = `Give other users access to ${db.name}: readers can read it, writers can also change its data, admins can also rename it, delete it and manage who it is shared with. A change applies to their very next request.`;
  const name = db.name;
  const table = $("share-table");
  await act(null, { error: $("share-error") }, async () => {
    const people = await state.client.listCollaborators(name);
    if (name !== state.db) return;
    if (!people.length) {
      table.replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "muted", textContent: "Not shared with anyone yet." }))));
      return;
    }
    table.replaceChildren(el("thead", {}, el("tr", {}, ...["User", "Role", ""].map((h) => el("th", { scope: "col", textContent: h })))),
      el("tbody", {}, ...people.map((p) => el("tr", {},
        el("td", { textContent: p.username }),
        el("td", {}, el("select", { "aria-label": `Role of ${p.username}`, onchange: (ev) => changeRole(ev.currentTarget, p) },
          ...ROLE_OPTIONS.map(([v, label]) => el("option", { value: v, textContent: label, selected: v === p.role })))),
        el("td", {}, el("button", { type: "button", class: "danger small", textContent: "Remove", "aria-label": `Remove ${p.username}`,
          onclick: (ev) => unshare(ev.currentTarget, p) }))))));
  });
}
async function shareDatabase(ev) {
  ev.preventDefault();
  const user = $("share-user").value.trim();
  const role = $("share-role").value;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(user)) { setError($("share-error"), "Enter the user name of the person to share with (letters, digits, _ and -)."); return; }
  const name = state.db;
  await act(ev.submitter, { status: $("share-status"), error: $("share-error") }, async () => {
    const c = await state.client.shareDatabase(name, user, role);
    $("share-user").value = "";
    setStatus($("share-status"), `${name} is shared with ${c.username} as ${ROLE_WORDS[c.role]}.`, true);
    await loadSharing();
  });
}
async function changeRole(select, p) {
  const name = state.db;
  await act(select, { status: $("share-status"), error: $("share-error") }, async () => {
    try {
      const c = await state.client.shareDatabase(name, p.username, select.value);
      setStatus($("share-status"), `${c.username} is now ${c.role === "ADMIN" ? "an" : "a"} ${ROLE_WORDS[c.role]} of ${name}.`, true);
    } finally {
      await loadSharing();
    }
  });
}
async function unshare(btn, p) {
  const name = state.db;
  await act(btn, { status: $("share-status"), error: $("share-error") }, async () => {
    await state.client.removeCollaborator(name, p.username);
    setStatus($("share-status"), `${p.username} no longer has access to ${name}.`, true);
    await loadSharing();
  });
}

// ---------------------------------------------------------------- start
function wire() {
  $("endpoint").value = endpointSetting();
  for (const r of document.querySelectorAll("input[name=method]")) r.addEventListener("change", methodChanged);
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signedOut("You are signed out."));
  $("db-create").addEventListener("submit", createDatabase);
  $("db-rename-btn").addEventListener("click", renameDatabase);
  $("db-privacy").addEventListener("click", togglePrivacy);
  armed($("db-delete"), "Really delete?", deleteDatabase);
  $("schema-refresh").addEventListener("click", loadSchema);
  for (const t of document.querySelectorAll("[role=tab]")) t.addEventListener("click", () => selectTab(t));
  document.querySelector("[role=tablist]").addEventListener("keydown", tabKeys);
  state.editor = createEditor($("editor"), {
    doc: "select g as n, g * g as square from generate_series(1, 20) g",
    label: "SQL editor",
    onRun: (stmt) => runQuery(stmt),
  });
  $("run").addEventListener("click", () => runQuery());
  $("history").addEventListener("change", (e) => { if (e.target.value) { state.editor.value = e.target.value; state.editor.focus(); } });
  const body = $("grid").querySelector(".grid-body");
  let queued = false;
  body.addEventListener("scroll", () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; drawRows(); }); } }, { passive: true });
  body.addEventListener("click", copyCell);
  $("dl-csv").addEventListener("click", () => downloadShown("csv"));
  $("dl-json").addEventListener("click", () => downloadShown("json"));
  $("export-full").addEventListener("click", exportFull);
  $("chart-col").addEventListener("change", drawChart);
  for (const r of document.querySelectorAll("input[name=import-mode]")) r.addEventListener("change", modeChanged);
  modeChanged();
  const dz = $("dropzone");
  dz.addEventListener("click", () => $("import-file").click());
  dz.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("import-file").click(); } });
  dz.addEventListener("dragover", (e) => { e.preventDefault(); dz.classList.add("over"); });
  dz.addEventListener("dragleave", () => dz.classList.remove("over"));
  dz.addEventListener("drop", (e) => {
    e.preventDefault();
    dz.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) previewFile(f);
  });
  $("import-file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) previewFile(f); e.target.value = ""; });
  $("import-go").addEventListener("click", importFile);
  $("import-discard").addEventListener("click", () => { discardImport(); $("import-file").click(); });
  $("import-table").addEventListener("input", () => { $("import-go").textContent = `Import into ${$("import-table").value.trim() || "…"}`; });
  $("export-run").addEventListener("click", runExport);
  $("export-download").addEventListener("click", download);
  $("key-create").addEventListener("click", createKey);
  $("key-copy").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText($("key-value").textContent).catch(() => {}));
  $("key-revoke").addEventListener("submit", revokeKey);
  armed($("key-revoke-all"), "Really revoke all?", revokeAll);
  $("share-form").addEventListener("submit", shareDatabase);
}

async function start() {
  wire();
  try {
    state.bitkit = await load();
  } catch (err) {
    show($("loading"), false);
    $("fatal").textContent = `The bitkit client did not load: ${err.message}. Reload the page; if it keeps failing, the dashboard files on the server are incomplete.`;
    show($("fatal"));
    return;
  }
  const resumed = await resume();
  show($("loading"), false);
  if (!resumed) show($("signin-view"));
  window.dashboardReadyAt = performance.now(); // read by web/test/dashboard-bench.mjs
  window.dashboardReady = true;
}

start();
