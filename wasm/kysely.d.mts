// Types of kysely.mjs: a Kysely dialect on the bitkit client.
import type { DatabaseConnection, Dialect, Driver, QueryResult, CompiledQuery, TransactionSettings, Kysely, DatabaseIntrospector, DialectAdapter, QueryCompiler } from "kysely";
import type { Client, BeginOptions } from "./bitkit.mjs";

export interface BitkitDialectConfig {
  /** A client of bitkit's createClient(). */
  client: Client;
  /** The database, "account/db". */
  database: string;
  /** Defaults for every transaction (idleTimeoutMs, deferrable); Kysely's isolationLevel and accessMode win. */
  transaction?: Omit<BeginOptions, "signal">;
}

/** PostgreSQL through a bitkit client; Kysely's transactions are interactive transactions over HTTP. */
export declare class BitkitDialect implements Dialect {
  constructor(config: BitkitDialectConfig);
  createDriver(): Driver;
  createQueryCompiler(): QueryCompiler;
  createAdapter(): DialectAdapter;
  createIntrospector(db: Kysely<any>): DatabaseIntrospector;
}

export declare class BitkitDriver implements Driver {
  constructor(config: BitkitDialectConfig);
  init(): Promise<void>;
  acquireConnection(): Promise<BitkitConnection>;
  beginTransaction(connection: BitkitConnection, settings: TransactionSettings): Promise<void>;
  commitTransaction(connection: BitkitConnection): Promise<void>;
  rollbackTransaction(connection: BitkitConnection): Promise<void>;
  releaseConnection(connection: BitkitConnection): Promise<void>;
  destroy(): Promise<void>;
}

export declare class BitkitConnection implements DatabaseConnection {
  /** The open transaction's id, or null. */
  readonly txId: string | null;
  executeQuery<R>(compiledQuery: CompiledQuery, options?: { signal?: AbortSignal }): Promise<QueryResult<R>>;
  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number, options?: { signal?: AbortSignal }): AsyncIterableIterator<QueryResult<R>>;
}
