// kysely.mjs: a Kysely dialect on the bitkit client (npm "kysely" ≥ 0.27 as a
// peer dependency). Statements go over HTTP through the wasm client, and
// Kysely's transactions (db.transaction().execute(…),
// db.startTransaction()) are bitkit's interactive transactions: begun with
// POST /v2beta/tx and committed or rolled back by their tx_id, so a
// read-modify-write under Kysely is atomic.
//
//   import { load } from "@bitkit-dev/client";
//   import { BitkitDialect } from "@bitkit-dev/client/kysely";
//   import { Kysely } from "kysely";
//   const bitkit = await load();
//   const db = new Kysely({ dialect: new BitkitDialect({ client: bitkit.createClient({ apiKey }), database: "me/shop" }) });
//
// Types: kysely.d.mts.
import { CompiledQuery, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from "kysely";

/** A Kysely dialect of PostgreSQL whose statements run through a bitkit client. */
export class BitkitDialect {
  #config;

  constructor(config) {
    if (!config || typeof config !== "object" || !config.client || typeof config.client.query !== "function") {
      throw new TypeError("BitkitDialect: pass { client, database }: a client of bitkit's createClient() and the database as \"account/db\"");
    }
    if (typeof config.database !== "string" || !config.database.includes("/")) {
      throw new TypeError(`BitkitDialect: database must name the database as "account/db", got ${JSON.stringify(config.database)}`);
    }
    this.#config = { ...config };
  }

  createDriver() { return new BitkitDriver(this.#config); }
  createQueryCompiler() { return new PostgresQueryCompiler(); }
  createAdapter() { return new PostgresAdapter(); }
  createIntrospector(db) { return new PostgresIntrospector(db); }
}

// Kysely's isolation levels → beginTx's. PostgreSQL runs read uncommitted as
// read committed.
const LEVELS = { "read uncommitted": "read_committed", "read committed": "read_committed", "repeatable read": "repeatable_read", serializable: "serializable" };

/** The driver: each acquired connection is a handle that may hold one transaction. */
export class BitkitDriver {
  #config;

  constructor(config) { this.#config = config; }

  async init() {}

  async acquireConnection() { return new BitkitConnection(this.#config); }

  async beginTransaction(connection, settings) {
    const opts = { ...this.#config.transaction };
    if (settings?.isolationLevel) {
      opts.isolationLevel = LEVELS[settings.isolationLevel];
      if (!opts.isolationLevel) throw new Error(`BitkitDialect: PostgreSQL has no isolation level "${settings.isolationLevel}"`);
    }
    if (settings?.accessMode) opts.readOnly = settings.accessMode === "read only";
    await connection.begin(opts);
  }

  async commitTransaction(connection) { await connection.end(true); }

  async rollbackTransaction(connection) { await connection.end(false); }

  async savepoint(connection, name) { await connection.savepoint("savepoint", name); }

  async rollbackToSavepoint(connection, name) { await connection.savepoint("rollback to savepoint", name); }

  async releaseSavepoint(connection, name) { await connection.savepoint("release savepoint", name); }

  async releaseConnection(connection) {
    // A connection given back with its transaction open (a bug of the
    // caller's): roll it back rather than leave it to the idle timeout.
    if (connection.txId) await connection.end(false).catch(() => {});
  }

  async destroy() {}
}

const CHANGES = ["INSERT", "UPDATE", "DELETE", "MERGE"];

/** A connection: statements outside a transaction are one request each; inside, they carry its txId. */
export class BitkitConnection {
  #client;
  #database;
  txId = null;

  constructor(config) {
    this.#client = config.client;
    this.#database = config.database;
  }

  async begin(opts) {
    if (this.txId) throw new Error("BitkitDialect: a transaction is already open on this connection");
    this.txId = (await this.#client.beginTx(this.#database, opts)).txId;
  }

  async end(commit) {
    const id = this.txId;
    if (!id) throw new Error("BitkitDialect: no transaction is open on this connection");
    this.txId = null;
    if (commit) await this.#client.commitTx(id);
    else await this.#client.rollbackTx(id);
  }

  async savepoint(command, name) {
    await this.executeQuery(CompiledQuery.raw(`${command} "${String(name).replaceAll('"', '""')}"`));
  }

  #opts(extra) {
    const o = { format: "objects", ...extra };
    if (this.txId) o.txId = this.txId;
    return o;
  }

  async executeQuery(compiledQuery, options) {
    const r = await this.#client.query(this.#database, compiledQuery.sql, [...compiledQuery.parameters], this.#opts(options?.signal ? { signal: options.signal } : {}));
    return {
      rows: r.rows,
      numAffectedRows: CHANGES.includes(r.command) ? BigInt(r.rowCount) : undefined,
    };
  }

  async *streamQuery(compiledQuery, chunkSize = 100, options) {
    let rows = [];
    const o = this.#opts({ batchRows: Math.max(1, chunkSize | 0) });
    if (options?.signal) o.signal = options.signal;
    for await (const row of this.#client.stream(this.#database, compiledQuery.sql, [...compiledQuery.parameters], o)) {
      rows.push(row);
      if (rows.length >= chunkSize) {
        yield { rows };
        rows = [];
      }
    }
    if (rows.length) yield { rows };
  }
}
