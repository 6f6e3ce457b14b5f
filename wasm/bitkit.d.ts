// Type declarations for the bitkit browser client (bitkit.wasm + bitkit.mjs).
//
// Value mapping of query results, per column type (decided by the column's
// type OID, so it does not depend on how the server spells type names). Exact:
// never rounded.
//   smallint, integer (int2/int4) and arrays ... number
//   bigint (int8) and bigint[], by the client option int8:
//        "number-if-safe" (default) → number when the number prints back as the
//                                     same digits (|n| ≤ 2^53), else the digits as a string
//        "bigint"                   → BigInt, e.g. 9223372036854775807n
//        "string"                   → the digits as a string ("9223372036854775807")
//   numeric (and numeric[]), by the client option numeric:
//        "number-if-safe" (default) → number when it prints back as the same text
//                                     ("2.5" → 2.5; "2.50", "0.1000", 30 digits → string)
//        "string"                   → the exact text, e.g. "12345678901234567890.000001"
//   real, double precision ...... number ("NaN", "Infinity", "-Infinity" arrive as strings)
//   boolean ..................... boolean
//   json, jsonb ................. nested objects/arrays (numbers inside JSON are numbers)
//   bytea ....................... base64 string
//   timestamps, dates ........... string (RFC 3339), or Date with timestamps: "date"
//                                 (a timestamp without time zone is read as UTC)
//   text, uuid and every other type ... string
//   NULL ........................ null
// With the defaults every result survives JSON.stringify. The types option
// replaces the mapping of a type by a parser of your own, keyed by type OID
// or lower-case type name ({ 1700: (v) => new Decimal(v), jsonb: (v) => v }):
// it receives each non-null value as sent (int8 and numeric as digit strings).
// Query parameters: bigint values are sent as exact JSON integers, Date as an
// RFC 3339 string; numbers, strings, booleans, null, arrays and plain objects
// as JSON.

/** A value in a query result row (see the mapping above). */
export type Value = null | boolean | number | bigint | string | Date | Value[] | { [key: string]: Value };

/** A query parameter ($1, $2, …). bigint is sent as an exact integer. */
export type Param = null | boolean | number | bigint | string | Param[] | { [key: string]: Param };

/** Where an access token obtained with username/password is kept between page loads. */
export type TokenCacheMode = "session" | "local" | "none";

export interface ClientOptions {
  /** Base URL of bitd, e.g. "http://127.0.0.1:8080". Default: the page's origin. */
  endpoint?: string;
  /** An API key ("v2_…"). At most one of apiKey, token or username+password; none for public databases only. */
  apiKey?: string;
  /** A static access token from /auth/v1/login (never refreshed). */
  token?: string;
  username?: string;
  password?: string;
  /** Opt-in token cache for username/password sign-in. Default "none". */
  tokenCache?: TokenCacheMode;
  /** The account (owner) to act as; default: the caller's default account. */
  account?: string;
  /** How bigint (int8) values arrive; default "number-if-safe" (see the mapping above). */
  int8?: NumberMode;
  /** How numeric values arrive; default "number-if-safe". */
  numeric?: Exclude<NumberMode, "bigint">;
  /** Timestamps and dates as RFC 3339 strings (default) or Date objects. */
  timestamps?: "string" | "date";
  /** Parsers of your own by type OID or lower-case type name; they get each non-null value as sent. */
  types?: Record<string | number, (value: any) => unknown>;
  /** @deprecated The former name of int8. */
  int64?: NumberMode;
}

/** The JS form of int8 and numeric values. */
export type NumberMode = "number-if-safe" | "bigint" | "string";

export interface Column {
  name: string;
  /** PostgreSQL type name as bitd reports it, e.g. "bigint", "text", "numeric", "integer[]". */
  type: string;
  /** PostgreSQL type OID (20 bigint, 23 integer, 1700 numeric, …). */
  typeOid: number;
}

export interface QueryResult<R = Value[]> {
  query: string;
  columns: Column[];
  /** Column name → PostgreSQL type name. */
  metadata: Record<string, string>;
  rows: R[];
  rowCount: number;
  /** The command tag verb, e.g. "SELECT", "INSERT". */
  command: string;
}

export interface QueryOptions {
  /** Aborts the call (and the request in flight); the Promise rejects with code "canceled". */
  signal?: AbortSignal;
  /** "rows" (default): rows are arrays in column order; "objects": rows are column-name → value (later duplicate names win). */
  format?: "rows" | "objects";
  /** Server-side statement timeout in milliseconds. */
  timeoutMs?: number;
  /** Runs the statement in this interactive transaction (beginTx); client.transaction sets it for you. */
  txId?: string;
}

/** Options of queryStream and stream. */
export interface StreamOptions extends QueryOptions {
  /** At most this many rows per onRows call (default 1000); each batch holds rows of one network chunk, handed over as it arrives. */
  batchRows?: number;
}

export interface Statement {
  sql: string;
  params?: Param[];
}

export interface BatchOptions {
  /** Aborts the call (and the request in flight); the Promise rejects with code "canceled". */
  signal?: AbortSignal;
  isolationLevel?: IsolationLevel;
  readOnly?: boolean;
  timeoutMs?: number;
  /** Runs the statements inside this interactive transaction (without isolationLevel and readOnly, which belong to beginTx). */
  txId?: string;
}

export type IsolationLevel = "read_committed" | "repeatable_read" | "serializable";

/** Options of beginTx. */
export interface BeginOptions {
  /** Aborts the begin request. */
  signal?: AbortSignal;
  /** Default "read_committed". */
  isolationLevel?: IsolationLevel;
  /** READ ONLY: writes fail with SQLSTATE 25006. */
  readOnly?: boolean;
  /** DEFERRABLE (with serializable and readOnly: waits for a snapshot that cannot fail). */
  deferrable?: boolean;
  /** How long the server keeps the transaction with no request in progress before rolling it back; default the server's (15 s), capped by it. */
  idleTimeoutMs?: number;
}

/** Options of client.transaction. */
export interface TransactionOptions extends BeginOptions {
  /** Runs the function again, in a new transaction, after a serialization failure or deadlock (SQLSTATE 40001, 40P01), at most this many times. Default 0. */
  maxRetries?: number;
}

/** An interactive transaction begun by beginTx. */
export interface TxInfo {
  txId: string;
  /** When the server rolls it back however busy it is (RFC 3339), "" when it did not say. */
  expiresAt: string;
}

/**
 * The transaction handed to client.transaction's function: the client's statement calls
 * in that transaction. Not for concurrent use: await each call before the next (the
 * server answers a second concurrent one with code "transaction_busy"). A failing
 * statement leaves the transaction failed, as in PostgreSQL; after the function returns,
 * calls reject with code "transaction_done".
 */
export interface Transaction {
  readonly id: string;
  readonly database: string;
  query<R = Value[]>(sql: string, params?: Param[], opts?: QueryOptions): Promise<QueryResult<R>>;
  /** Runs one statement and resolves with the number of rows it affected (or returned). */
  exec(sql: string, params?: Param[], opts?: QueryOptions): Promise<number>;
  batch(statements: (Statement | string)[], opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<QueryResult[]>;
  queryStream<R = Value[]>(
    sql: string,
    params: Param[] | undefined,
    onRow: ((row: R, index: number, columns: Column[]) => void | Promise<void>) | { onRows: (rows: R[], columns: Column[]) => void | Promise<void> },
    opts?: StreamOptions,
  ): Promise<StreamResult>;
  /** Read the whole stream (or leave the loop) before the transaction's next call. */
  stream<R = Value[]>(sql: string, params?: Param[], opts?: StreamOptions): AsyncIterable<R>;
}

export interface Usage {
  rowsQueried: number;
  periodStart: string;
  periodEnd: string;
}

export interface Database {
  id: string;
  /** Full name "account/db". */
  name: string;
  dateCreated: string;
  isPrivate: boolean;
  role: "OWNER" | "ADMIN" | "WRITER" | "READER" | string;
  storageLimitBytes: number;
  storageUsageBytes: number;
  usageCurrent: Usage | null;
  usagePrevious: Usage | null;
}

export type CollaboratorRole = "ADMIN" | "WRITER" | "READER";

/** A user a database is shared with. */
export interface Collaborator {
  username: string;
  role: CollaboratorRole;
}

export interface CreateDatabaseOptions {
  /** Default true. */
  isPrivate?: boolean;
  storageLimitBytes?: number;
  account?: string;
}

export interface UpdateDatabaseOptions {
  /** New short name (rename). */
  name?: string;
  isPrivate?: boolean;
  storageLimitBytes?: number;
}

export type JobState = "RECEIVED" | "PROCESSING" | "DONE" | "FAILED";

export interface JobProgress {
  bytesTotal: number;
  bytesDone: number;
  rows: number;
}

export interface Job {
  id: string;
  dateCreated: string;
  dateFinished: string | null;
  state: JobState;
  retries: number;
  errorType: string;
  errorId: string;
  errorDetails: Record<string, unknown> | null;
  statusUrl: string;
  progress: JobProgress | null;
  exportFormat: string;
  fileName: string;
  downloadUrl: string;
}

/** Progress events of importFile and exportData. */
export type ProgressEvent =
  | { phase: "upload"; loaded: number; total: number }
  | { phase: "job"; job: Job }
  | { phase: "download"; loaded: number };

export interface ImportOptions {
  /** Aborts the call (and the request in flight); the Promise rejects with code "canceled". */
  signal?: AbortSignal;
  table: string;
  schema?: string;
  /** "auto" (default), "first_row" or "no_header". */
  inferHeader?: "auto" | "first_row" | "no_header";
  /**
   * What happens to an existing table: "append" (default) adds the rows;
   * "replace" empties it and loads the file in one transaction on the server,
   * keeping its columns, indexes, constraints and grants (a file that does not
   * fit the table fails the job and leaves the old rows).
   */
  ifExists?: "append" | "replace";
  /** File name sent to the server; default the File's name or "upload.csv". */
  fileName?: string;
  onProgress?: (ev: ProgressEvent) => void;
}

export interface ExportOptions {
  /** Aborts the call (and the request in flight); the Promise rejects with code "canceled". */
  signal?: AbortSignal;
  query?: string;
  table?: string;
  schema?: string;
  format?: "csv" | "json" | "xls" | "parquet";
  fileName?: string;
  onProgress?: (ev: ProgressEvent) => void;
}

export interface ExportResult {
  job: Job;
  /** The job's download URL (it needs the Authorization header when it points at bitd). */
  url: string;
  /** Downloads the exported file with the client's credentials. */
  download(opts?: { onProgress?: (ev: ProgressEvent) => void }): Promise<Blob>;
}

export interface APIKey {
  apiKey: string;
  username: string;
}

/** One of the caller's live API keys as listApiKeys shows it; never the key itself (the server keeps only a hash). */
export interface APIKeyInfo {
  /** Names the key in revokeApiKeyById; not a secret. */
  id: string;
  /** A name for people ("key 1a2b3c4d"). */
  label: string;
  dateCreated: string;
  /** null when the key has never authenticated a request. */
  lastUsed: string | null;
  /** True for the key the listing request was made with. */
  current: boolean;
}

export interface ServiceAccount {
  id: string;
  name: string;
  dateCreated: string;
  role: string;
  /** The databases the service account can reach; name is "account/db". */
  databases: { id: string; name: string }[] | null;
  tokenCount: number;
  activeTokenCount: number;
}

export interface Account {
  id: string;
  name: string;
}

export interface StreamResult {
  rowCount: number;
  columns: Column[];
}

export interface Client {
  readonly endpoint: string;
  /** Runs one statement (several, even with semicolons between them, reject with "invalid_argument": use batch). */
  query<R = Value[]>(database: string, sql: string, params?: Param[], opts?: QueryOptions): Promise<QueryResult<R>>;
  /** Streams the rows of one statement to onRow as they arrive; when onRow returns a Promise the stream waits for it. A throw or rejection of onRow ends the stream with code "callback_error". */
  queryStream<R = Value[]>(
    database: string,
    sql: string,
    params: Param[] | undefined,
    onRow: ((row: R, index: number, columns: Column[]) => void | Promise<void>) | { onRows: (rows: R[], columns: Column[]) => void | Promise<void> },
    opts?: StreamOptions,
  ): Promise<StreamResult>;
  /** The rows of one statement as an async iterable: for await (const row of client.stream(db, sql)) …; leaving the loop early aborts the stream. */
  stream<R = Value[]>(database: string, sql: string, params?: Param[], opts?: StreamOptions): AsyncIterable<R>;
  /** Runs the statements in one transaction: all or nothing. */
  batch(database: string, statements: (Statement | string)[], opts?: BatchOptions): Promise<QueryResult[]>;
  /**
   * Runs fn in an interactive transaction: commits when fn resolves (resolving with fn's value),
   * rolls back when fn throws (rejecting with what fn threw). With maxRetries, runs fn again after
   * a serialization failure (40001) or deadlock (40P01): fn must be safe to run more than once.
   */
  transaction<T>(database: string, fn: (tx: Transaction) => Promise<T> | T, opts?: TransactionOptions): Promise<T>;
  /** Begins an interactive transaction by hand; run statements with { txId } and end it with commitTx or rollbackTx. */
  beginTx(database: string, opts?: BeginOptions): Promise<TxInfo>;
  /** Commits; a transaction in which a statement failed is rolled back instead and this rejects with code "transaction_aborted". */
  commitTx(txId: string): Promise<void>;
  /** Rolls back; one the server already ended (idle timeout) is not an error. */
  rollbackTx(txId: string): Promise<void>;
  listDatabases(): Promise<Database[]>;
  getDatabase(name: string): Promise<Database>;
  createDatabase(name: string, opts?: CreateDatabaseOptions): Promise<Database>;
  updateDatabase(name: string, changes: UpdateDatabaseOptions): Promise<Database>;
  deleteDatabase(name: string): Promise<void>;
  /** The users a database is shared with and their roles; needs OWNER or ADMIN on it. */
  listCollaborators(database: string): Promise<Collaborator[]>;
  /** Shares a database with a user as ADMIN, WRITER or READER, or changes their role; needs OWNER or ADMIN on it. An unknown user rejects with status 404, yourself or an owner with 400. */
  shareDatabase(database: string, user: string, role: CollaboratorRole): Promise<Collaborator>;
  /** Stops sharing a database with a user: their next request is refused and their open wire sessions on it end. */
  removeCollaborator(database: string, user: string): Promise<void>;
  /** Uploads a File/Blob and waits for the import job; rejects with a BitkitError (code "job_failed") when the job fails. */
  importFile(database: string, file: Blob, opts: ImportOptions): Promise<Job>;
  /** Runs an export job to completion. */
  exportData(database: string, opts: ExportOptions): Promise<ExportResult>;
  createApiKey(): Promise<APIKey>;
  revokeApiKey(key: string): Promise<void>;
  revokeAllApiKeys(): Promise<void>;
  /** The caller's live API keys, oldest first; needs a user's credentials (API key or username/password), not a service account's. */
  listApiKeys(): Promise<APIKeyInfo[]>;
  /** Revokes one of the caller's keys by the id listApiKeys shows; an id naming no live key of the caller's rejects with status 404. */
  revokeApiKeyById(id: string): Promise<void>;
  /** The service accounts the caller manages. */
  listServiceAccounts(): Promise<ServiceAccount[]>;
  account(): Promise<Account>;
  /** Logs in with username/password now (otherwise done on first use). */
  login(): Promise<void>;
  /**
   * Revokes the access token on the server and forgets it (and its cached copy);
   * with a token client it revokes that token; with an API key it does nothing.
   */
  logout(): Promise<void>;
  /**
   * The access token a username/password client uses (logging in first when it has
   * none or it is about to expire), or a token client's token; null with an API key
   * or none. Keep it instead of the password and resume with createClient({ token })
   * (never refreshed: once it expires calls reject with code "unauthorized").
   */
  accessToken(): Promise<string | null>;
}

/** The codes of a BitkitError: the client's own, then bitd's (docs/web.md). */
export type ErrorCode =
  | "invalid_argument" | "network_error" | "canceled" | "callback_error" | "job_failed" | "load_failed" | "client_error"
  | "transaction_done" | "transaction_aborted" | "transaction_not_found" | "transaction_ended" | "transaction_busy" | "too_many_transactions"
  | "sql_error" | "query_timeout" | "unauthorized" | "forbidden" | "permission_denied" | "not_found" | "conflict"
  | "invalid_request" | "database_busy" | "database_unavailable" | "client_closed_request" | "internal"
  | "cors_origin_not_allowed";

/** The fields a BitkitError is built from. */
export interface BitkitErrorFields {
  status?: number;
  code?: ErrorCode;
  sqlstate?: string;
  detail?: string;
  hint?: string;
  position?: number;
  requestId?: string;
  job?: Job;
  /** The original error, such as the exception your callback threw. */
  cause?: unknown;
}

/** Every rejection of the API is a BitkitError. */
export declare class BitkitError extends Error {
  constructor(message: string, fields?: BitkitErrorFields);
  readonly name: "BitkitError";
  /** HTTP status; 0 when no answer arrived (network, CORS, bad input). */
  readonly status: number;
  /** Stable snake_case code. "callback_error": your onRow/onProgress threw or rejected (see cause). */
  readonly code: ErrorCode;
  /** The original error for "callback_error". */
  readonly cause?: unknown;
  readonly sqlstate: string;
  readonly detail: string;
  readonly hint: string;
  readonly position: number;
  readonly requestId: string;
  /** For code "job_failed": the failed job. */
  readonly job?: Job;
}

export interface Bitkit {
  readonly version: string;
  createClient(opts?: ClientOptions): Client;
  BitkitError: typeof BitkitError;
}

export interface LoadOptions {
  /** URL of bitkit.wasm; default new URL("./bitkit.wasm", import.meta.url). */
  wasmURL?: string | URL;
  /** The compiled bitkit.wasm instead of wasmURL, as Workers runtimes import a .wasm file (import wasm from "./bitkit.wasm"). */
  wasmModule?: WebAssembly.Module;
  /** URL of wasm_exec.js; default new URL("./wasm_exec.js", import.meta.url). Skipped when globalThis.Go exists. */
  wasmExecURL?: string | URL;
  /**
   * Run the Go instance in a dedicated Web Worker (default in a page) or on the main thread (false; the default
   * elsewhere). In a Worker the API is the same, except that createClient's option errors reject the first call
   * instead of throwing, and the types and tokenCache options need worker: false.
   */
  worker?: boolean;
  /** URL of bitkit.mjs for the Worker; default new URL("./bitkit.mjs", import.meta.url) (beside your bundle when bundled). */
  workerURL?: string | URL;
}

/** Loads and starts the wasm module once; resolves with the API namespace (also globalThis.bitkit). */
export declare function load(opts?: LoadOptions): Promise<Bitkit>;
