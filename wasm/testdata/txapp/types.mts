// types.mts: type-checked with tsc --strict against bitkit.d.mts, kysely.d.mts and
// drizzle.d.mts (TestTransactionTypings); never run. The @ts-expect-error line
// fails the check if the typings turn loose.
import type { Client } from "./bitkit.mjs";
import { BitkitDialect } from "./kysely.mjs";
import { drizzle } from "./drizzle.mjs";
import { Kysely } from "kysely";
import { pgTable, integer } from "drizzle-orm/pg-core";
import { eq } from "drizzle-orm";
declare const c: Client;
interface DB { acct: { id: number; balance: number } }
const k = new Kysely<DB>({ dialect: new BitkitDialect({ client: c, database: "a/b" }) });
const acct = pgTable("acct", { id: integer("id").primaryKey(), balance: integer("balance").notNull() });
export async function f(): Promise<number> {
  const n: boolean = await c.transaction("a/b", async (tx) => { const r = await tx.query<[number]>("select 1"); const x: number = await tx.exec("x"); return r.rows[0][0] + x > 0; }, { maxRetries: 2, isolationLevel: "serializable" });
  await k.transaction().execute(async (trx) => trx.selectFrom("acct").select("balance").execute());
  const d = drizzle(c, "a/b");
  const rows = await d.transaction(async (tx) => { const r = await tx.select().from(acct).where(eq(acct.id, 1)); if (!r.length) tx.rollback(); return r; }, { isolationLevel: "serializable", maxRetries: 1 });
  // @ts-expect-error: isolation level names are checked
  await c.transaction("a/b", async () => 1, { isolationLevel: "chaos" });
  return rows[0].balance + (n ? 1 : 0);
}
