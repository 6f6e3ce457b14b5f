// A TypeScript app of a new developer's shape: it installs the client from
// the npm tarball (`npm install ./bitkit-dev-client-<v>.tgz`), imports it by
// its package name — no import map, no `paths` — and is type-checked with
// `tsc --strict`, bundled by esbuild and run in Chromium by TestPackage.
import { load, BitkitError, type Client, type QueryResult, type Value } from "@bitkit-dev/client";

interface Outcome {
  json: string;
  streamed: number;
  rowCount: number;
  sqlError: { code: string; sqlstate: string; isError: boolean } | null;
  multi: string;
  bigint: string;
}

async function main(): Promise<Outcome> {
  const q = new URLSearchParams(location.search);
  const endpoint = q.get("endpoint") ?? "";
  const user = q.get("user") ?? "";
  const name = q.get("db") ?? "";
  const bitkit = await load(); // bitkit.wasm and wasm_exec.js beside the bundle
  const c: Client = bitkit.createClient({ endpoint, apiKey: q.get("key") ?? "" });
  await c.createDatabase(name);
  const db = `${user}/${name}`;
  const r: QueryResult = await c.query(db, "select 1 as one, 9007199254740993::int8 as big, 2.5::numeric as n, array[1,2]::int4[] as a");
  const exact = bitkit.createClient({ endpoint, apiKey: q.get("key") ?? "", int8: "bigint" });
  const big: Value = (await exact.query(db, "select 9223372036854775807::int8")).rows[0][0];
  let streamed = 0;
  const s = await c.queryStream(db, "select g from generate_series(1, 1000) g", [], (row) => {
    streamed += row[0] as number;
  });
  let sqlError: Outcome["sqlError"] = null;
  try {
    await c.query(db, "select * from no_such_table");
  } catch (e) {
    if (e instanceof BitkitError) sqlError = { code: e.code, sqlstate: e.sqlstate, isError: e instanceof Error };
  }
  const multi = await c.query(db, "select 1; select 2").then(() => "resolved", (e: unknown) => (e instanceof BitkitError ? e.code : "other"));
  await c.deleteDatabase(db);
  return { json: JSON.stringify(r.rows), streamed, rowCount: s.rowCount, sqlError, multi, bigint: typeof big === "bigint" ? big.toString() : typeof big };
}

declare global {
  interface Window {
    __outcome?: Outcome | { fatal: string };
  }
}

main().then(
  (o) => { window.__outcome = o; },
  (e: unknown) => { window.__outcome = { fatal: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }; },
);
