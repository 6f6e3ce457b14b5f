// A TypeScript program against wasm/bitkit.d.ts; `tsc --noEmit` checks it
// (make test-web, and TestTypeScriptExample in wasm/e2e_test.go). In a real
// project, map "bitkit" to the served bitkit.mjs (an import map or bundler alias).
import { load, BitkitError, type APIKeyInfo, type Client, type Database, type Job, type QueryResult, type Value } from "bitkit";

interface Score {
  id: bigint;
  name: string;
  score: number;
}

export async function main(endpoint: string, apiKey: string): Promise<void> {
  const bitkit = await load({ wasmURL: "/bitkit.wasm", wasmExecURL: "/wasm_exec.js" });
  const client: Client = bitkit.createClient({ endpoint, apiKey, int8: "bigint" });
  const me = await client.account();
  const db: Database = await client.createDatabase("scores", { isPrivate: true });
  console.log(me.name, db.name, db.isPrivate, db.storageLimitBytes);

  const r: QueryResult = await client.query(db.name, "select $1::int8 as big", [9223372036854775807n]);
  const big: Value = r.rows[0][0];
  if (typeof big === "bigint" && big === 9223372036854775807n) console.log("exact", r.columns[0].type, r.rowCount);

  const objs = await client.query<Score>(db.name, "select 1::int8 as id, 'a' as name, 1.5::float8 as score", [], { format: "objects", timeoutMs: 5000 });
  const first: Score = objs.rows[0];
  console.log(first.id + 1n, first.name.toUpperCase(), first.score.toFixed(1));

  const { rowCount } = await client.queryStream(db.name, "select g from generate_series(1, 10) g", undefined, async (row, i, cols) => {
    console.log(i, cols[0].name, row[0]);
  });
  const results = await client.batch(db.name, ["create table t (id int8)", { sql: "insert into t values ($1)", params: [1n] }], { isolationLevel: "serializable", readOnly: false });
  console.log(rowCount, results.length);

  const file = new File(["id,name\n1,a\n"], "t.csv", { type: "text/csv" });
  const job: Job = await client.importFile(db.name, file, {
    table: "imported",
    inferHeader: "first_row",
    onProgress: (ev) => {
      if (ev.phase === "upload") console.log(ev.loaded, ev.total);
      else if (ev.phase === "job") console.log(ev.job.state, ev.job.progress?.rows);
    },
  });
  console.log(job.state === "DONE", job.errorDetails);

  const exp = await client.exportData(db.name, { table: "imported", format: "csv", fileName: "out.csv" });
  const blob: Blob = await exp.download({ onProgress: (ev) => console.log(ev.phase) });
  console.log(exp.url, exp.job.downloadUrl, blob.size);

  const key = await client.createApiKey();
  await client.revokeApiKey(key.apiKey);
  const keys: APIKeyInfo[] = await client.listApiKeys();
  const stale = keys.find((k) => !k.current && k.lastUsed === null);
  if (stale) await client.revokeApiKeyById(stale.id);
  for (const sa of await client.listServiceAccounts()) console.log(sa.name, sa.role, sa.activeTokenCount, sa.databases?.map((d) => d.name));
  await client.updateDatabase(db.name, { name: "scores2", isPrivate: false });
  const all: Database[] = await client.listDatabases();
  console.log(all.map((d) => d.usageCurrent?.rowsQueried ?? 0));

  try {
    await client.query(db.name, "select * from missing");
  } catch (err) {
    if (err instanceof BitkitError) {
      const fields: [number, string, string, string, string, number, string] = [err.status, err.code, err.sqlstate, err.detail, err.hint, err.position, err.requestId];
      console.log(fields, err.message, err.job?.state);
    }
  }
  const own = new BitkitError("my check failed", { code: "invalid_argument", cause: new Error("inner") });
  if (own.code === "invalid_argument" && own.cause instanceof Error) console.log(own.message);
  // @ts-expect-error: "no_such_code" is not an ErrorCode
  new BitkitError("x", { code: "no_such_code" });
  // The typings are strict: each line below must be a type error (tsc fails on an unused @ts-expect-error).
  // @ts-expect-error: int8 is "number-if-safe", "bigint" or "string"
  bitkit.createClient({ endpoint, apiKey, int8: "number" });
  // @ts-expect-error: format is "rows" or "objects"
  await client.query(db.name, "select 1", [], { format: "csv" });
  // @ts-expect-error: a Symbol is not a query parameter
  await client.query(db.name, "select $1", [Symbol("x")]);
  // @ts-expect-error: importFile needs options.table
  await client.importFile(db.name, file, {});
  const pw = bitkit.createClient({ endpoint, username: "me", password: "secret", tokenCache: "session" });
  await pw.login();
  await pw.logout();
  await client.revokeAllApiKeys();
  await client.deleteDatabase("me/scores2");
  await client.getDatabase("me/scores2").catch((e: BitkitError) => e.status);
}
