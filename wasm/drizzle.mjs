// drizzle.mjs: Drizzle ORM (npm "drizzle-orm" as a peer dependency) on the
// bitkit client, through drizzle's pg-proxy driver. pg-proxy sends each
// statement through a callback and refuses db.transaction ("Transactions are
// not supported by the Postgres Proxy driver"): here db.transaction(fn, config)
// is bitkit's interactive transaction instead (client.transaction), and fn
// gets a database of the same kind whose statements run in it, with
// tx.rollback() and nested tx.transaction() (a savepoint).
//
//   import { load } from "@bitkit-dev/client";
//   import { drizzle } from "@bitkit-dev/client/drizzle";
//   const bitkit = await load();
//   const db = drizzle(bitkit.createClient({ apiKey }), "me/shop", { schema });
//   await db.transaction(async (tx) => { … });
//
// Types: drizzle.d.mts.
import { TransactionRollbackError } from "drizzle-orm";
import { drizzle as pgProxy } from "drizzle-orm/pg-proxy";

// proxyCallback is pg-proxy's callback (sql, params, method): method "all"
// wants rows as arrays in column order, "execute" rows as objects.
function proxyCallback(client, database, txId) {
  return async (sql, params, method) => {
    const opts = { format: method === "all" ? "rows" : "objects" };
    if (txId) opts.txId = txId;
    const r = await client.query(database, sql, params ?? [], opts);
    return { rows: r.rows };
  };
}

// Drizzle's transaction config → client.transaction's options (which it
// also accepts as they are: maxRetries, idleTimeoutMs).
const LEVELS = { "read uncommitted": "read_committed", "read committed": "read_committed", "repeatable read": "repeatable_read", serializable: "serializable" };
function txOptions(config) {
  const { isolationLevel, accessMode, deferrable, ...rest } = config ?? {};
  const o = { ...rest };
  if (isolationLevel) {
    o.isolationLevel = LEVELS[isolationLevel] ?? isolationLevel;
  }
  if (accessMode) o.readOnly = accessMode === "read only";
  if (deferrable !== undefined) o.deferrable = !!deferrable;
  return o;
}

const quoteIdent = (s) => `"${s.replaceAll('"', '""')}"`;

// txDatabase is the database handed to db.transaction's function: pg-proxy's
// database whose statements carry the transaction's id.
function txDatabase(client, database, txId, config) {
  const tx = pgProxy(proxyCallback(client, database, txId), config);
  const run = (sql) => client.query(database, sql, [], { txId });
  let savepoints = 0;
  tx.rollback = () => { throw new TransactionRollbackError(); };
  tx.transaction = async (fn) => {
    const name = quoteIdent(`sp${++savepoints}`);
    await run(`savepoint ${name}`);
    let value;
    try {
      value = await fn(tx);
    } catch (e) {
      await run(`rollback to savepoint ${name}`);
      throw e;
    }
    await run(`release savepoint ${name}`);
    return value;
  };
  return tx;
}

/**
 * drizzle(client, database, config) is pg-proxy's drizzle() running its statements
 * through client (bitkit's createClient()) in database ("account/db"), with
 * db.transaction as an interactive transaction. config is pg-proxy's ({ schema, logger, casing }).
 */
export function drizzle(client, database, config = {}) {
  if (!client || typeof client.query !== "function" || typeof client.transaction !== "function") {
    throw new TypeError("drizzle: the first argument must be a client of bitkit's createClient()");
  }
  if (typeof database !== "string" || !database.includes("/")) {
    throw new TypeError(`drizzle: the second argument must name the database as "account/db", got ${JSON.stringify(database)}`);
  }
  const db = pgProxy(proxyCallback(client, database, null), config);
  db.transaction = (fn, txConfig) =>
    client.transaction(database, (t) => fn(txDatabase(client, database, t.id, config)), txOptions(txConfig));
  return db;
}
