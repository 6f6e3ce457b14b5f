// Types of drizzle.mjs: Drizzle ORM (pg-proxy) on the bitkit client.
import type { PgRemoteDatabase } from "drizzle-orm/pg-proxy";
import type { DrizzleConfig } from "drizzle-orm";
import type { PgTransactionConfig } from "drizzle-orm/pg-core";
import type { Client, TransactionOptions } from "./bitkit.mjs";

/** Drizzle's transaction config, plus client.transaction's options (maxRetries, idleTimeoutMs). */
export type BitkitTransactionConfig = PgTransactionConfig & Omit<TransactionOptions, "isolationLevel" | "readOnly" | "deferrable" | "signal">;

/** The database handed to db.transaction's function: its statements run in the transaction. */
export type BitkitTransaction<TSchema extends Record<string, unknown>> = Omit<BitkitDatabase<TSchema>, "transaction"> & {
  /** Rolls the transaction back: throws drizzle's TransactionRollbackError, which db.transaction rethrows. */
  rollback(): never;
  /** A nested transaction: a savepoint, rolled back to when fn throws. */
  transaction<T>(fn: (tx: BitkitTransaction<TSchema>) => Promise<T>): Promise<T>;
};

export type BitkitDatabase<TSchema extends Record<string, unknown> = Record<string, never>> = Omit<PgRemoteDatabase<TSchema>, "transaction"> & {
  /** An interactive transaction: commits when fn resolves, rolls back (and rethrows) when it throws. */
  transaction<T>(fn: (tx: BitkitTransaction<TSchema>) => Promise<T>, config?: BitkitTransactionConfig): Promise<T>;
};

/** pg-proxy's drizzle() running its statements through a bitkit client in database ("account/db"). */
export declare function drizzle<TSchema extends Record<string, unknown> = Record<string, never>>(
  client: Client,
  database: string,
  config?: DrizzleConfig<TSchema>,
): BitkitDatabase<TSchema>;
