// suite.mjs: the interactive-transaction checks of the JavaScript API,
// client.transaction, the Kysely dialect (kysely.mjs) and the Drizzle
// adapter (drizzle.mjs), against a real bitd. The same suite runs in
// headless Chromium (browser.mjs, TestBrowserTransactions in
// wasm/tx_e2e_test.go) and in workerd (worker.mjs,
// TestWorkerdTransactions in workers/workerdtest). Each part does a
// read-modify-write transfer between two rows (read a balance, decide,
// update both), checks that another request does not see it before the
// commit, and that a transaction whose function throws leaves nothing.
// run returns the outcome the Go tests check.
import { Kysely, sql } from "kysely";
import { eq, sql as dsql, TransactionRollbackError } from "drizzle-orm";
import { integer, pgTable } from "drizzle-orm/pg-core";
import { BitkitDialect } from "../../kysely.mjs";
import { drizzle } from "../../drizzle.mjs";

const acct = pgTable("acct", { id: integer("id").primaryKey(), balance: integer("balance").notNull() });

export async function run(bitkit, { endpoint, apiKey, user, db: name }) {
  const out = { steps: [] };
  const step = (s) => out.steps.push(s);
  const client = bitkit.createClient({ endpoint, apiKey });
  const db = `${user}/${name}`;
  await client.createDatabase(name);
  await client.query(db, "create table acct (id int primary key, balance int not null)");
  await client.query(db, "insert into acct values (1, 100), (2, 0)");
  const balances = async () => (await client.query(db, "select balance from acct order by id")).rows.map((r) => r[0]);

  // client.transaction: read, decide, write; invisible outside until the commit.
  out.coreResult = await client.transaction(db, async (tx) => {
    const [[bal]] = (await tx.query("select balance from acct where id = $1 for update", [1])).rows;
    if (bal < 30) return "declined";
    await tx.exec("update acct set balance = balance - $1 where id = $2", [30, 1]);
    await tx.batch([{ sql: "update acct set balance = balance + $1 where id = $2", params: [30, 2] }]);
    out.coreInside = (await tx.query("select balance from acct order by id")).rows.map((r) => r[0]);
    out.coreOutsideBefore = await balances();
    let streamed = 0;
    for await (const row of tx.stream("select balance from acct order by id")) streamed += row[0];
    out.coreStreamed = streamed;
    return "moved";
  }, { isolationLevel: "repeatable_read" });
  out.coreAfter = await balances();
  step("core read-modify-write");

  // A throw rolls back and is rethrown as it is.
  const boom = new Error("boom");
  let leaked;
  try {
    await client.transaction(db, async (tx) => {
      leaked = tx;
      await tx.exec("update acct set balance = balance - 1000 where id = 1");
      throw boom;
    });
    out.coreThrow = "resolved";
  } catch (e) {
    out.coreThrow = e === boom ? "rethrown" : `other: ${e}`;
  }
  out.coreAfterThrow = await balances();
  try { // the server no longer has it: it was rolled back, not left to the idle timeout
    await client.query(db, "select 1", [], { txId: leaked.id });
    out.coreEnded = "still open";
  } catch (e) {
    out.coreEnded = e.code;
  }
  try {
    await leaked.query("select 1");
    out.coreDone = "resolved";
  } catch (e) {
    out.coreDone = e.code;
  }
  step("core rollback");

  // maxRetries: a serialization failure (40001) runs the function again.
  let attempts = 0;
  out.coreRetried = await client.transaction(db, async (tx) => {
    if (attempts++ === 0) await tx.query("do $$ begin raise exception 'conflict' using errcode = 'serialization_failure'; end $$");
    return (await tx.query("select count(*)::int from acct")).rows[0][0];
  }, { maxRetries: 2 });
  out.coreAttempts = attempts;
  // readOnly refuses writes (SQLSTATE 25006).
  try {
    await client.transaction(db, (tx) => tx.exec("update acct set balance = 0"), { readOnly: true });
    out.readOnlyState = "no error";
  } catch (e) {
    out.readOnlyState = e.sqlstate || `${e.code}: ${e.message}`;
  }
  step("core retries, read only");

  // Kysely: the same transfer (20 from 1 to 2) through the dialect.
  const k = new Kysely({ dialect: new BitkitDialect({ client, database: db }) });
  out.kyselyResult = await k.transaction().setIsolationLevel("serializable").execute(async (trx) => {
    const { balance } = await trx.selectFrom("acct").select("balance").where("id", "=", 1).forUpdate().executeTakeFirstOrThrow();
    if (balance < 20) return "declined";
    const r = await trx.updateTable("acct").set({ balance: sql`balance - 20` }).where("id", "=", 1).executeTakeFirst();
    await trx.updateTable("acct").set({ balance: sql`balance + 20` }).where("id", "=", 2).execute();
    out.kyselyUpdated = Number(r.numUpdatedRows);
    out.kyselyOutsideBefore = await balances();
    return "moved";
  });
  out.kyselyAfter = (await k.selectFrom("acct").select(["id", "balance"]).orderBy("id").execute()).map((r) => r.balance);
  try {
    await k.transaction().execute(async (trx) => {
      await trx.updateTable("acct").set({ balance: 0 }).execute();
      throw boom;
    });
  } catch (e) {
    out.kyselyThrow = e === boom ? "rethrown" : `other: ${e}`;
  }
  out.kyselyAfterThrow = await balances();
  step("kysely");

  // Drizzle: the transfer (10 from 1 to 2) and tx.rollback().
  const d = drizzle(client, db);
  out.drizzleResult = await d.transaction(async (tx) => {
    const [{ balance }] = await tx.select({ balance: acct.balance }).from(acct).where(eq(acct.id, 1)).for("update");
    if (balance < 10) return "declined";
    await tx.update(acct).set({ balance: dsql`${acct.balance} - 10` }).where(eq(acct.id, 1));
    await tx.update(acct).set({ balance: dsql`${acct.balance} + 10` }).where(eq(acct.id, 2));
    out.drizzleOutsideBefore = await balances();
    return "moved";
  }, { isolationLevel: "read committed" });
  out.drizzleAfter = (await d.select().from(acct).orderBy(acct.id)).map((r) => r.balance);
  try {
    await d.transaction(async (tx) => {
      await tx.update(acct).set({ balance: 0 });
      tx.rollback();
    });
  } catch (e) {
    out.drizzleRollback = e instanceof TransactionRollbackError ? "TransactionRollbackError" : `other: ${e}`;
  }
  out.drizzleAfterRollback = await balances();
  step("drizzle");
  await client.deleteDatabase(db).catch(() => {});
  return out;
}
