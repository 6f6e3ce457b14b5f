// Type declarations for the bitkit browser client (bitkit.wasm + bitkit.mjs).
//
// Value mapping of query results, per column type (decided by the column's
// type OID, so it does not depend on how the server spells type names). Exact:
// never rounded.
//   smallint, integer, bigint (int2/int4/int8) and their arrays
//        int64: "bigint" (default) → BigInt, e.g. 9223372036854775807n
//        int64: "string"           → bigint as a string ("9223372036854775807"),
//                                    smallint/integer as numbers
//   numeric (and numeric[]) ..... string, always, e.g. "12345678901234567890.000001"
//   real, double precision ...... number ("NaN", "Infinity", "-Infinity" arrive as strings)
//   boolean ..................... boolean
//   json, jsonb ................. nested objects/arrays (numbers inside JSON are numbers)
//   bytea ....................... base64 string
//   timestamps, dates, text, uuid and every other type ... string (timestamps RFC 3339)
//   NULL ........................ null
// Query parameters: bigint values are sent as exact JSON integers, Date as an
// RFC 3339 string; numbers, strings, booleans, null, arrays and plain objects
// as JSON.

/** A value in a query result row (see the mapping above). */
export type Value = null | boolean | number | bigint | string | Value[] | { [key: string]: Value };

/** A query parameter ($1, $2, …). bigint is sent as an exact integer. */
export type Param = null | boolean | number | bigint | string | Param[] | { [key: string]: Param };

/** Where an access token obtained with username/password is kept between page loads. */
export type TokenCacheMode = "session" | "local" | "none";

export interface ClientOptions {
  /** Base URL of bitd, e.g. "http://127.0.0.1:8080". Default: the page's origin. */
  endpoint?: string;
  /** An API key ("v2_…"). Exactly one of apiKey, token or username+password. */
  apiKey?: string;
  /** A static access token from /auth/v1/login (never refreshed). */
  token?: string;
  username?: string;
  password?: string;
  /** Opt-in token cache for username/password sign-in. Default "none". */
  tokenCache?: TokenCacheMode;
  /** The account (owner) to act as; default: the caller's default account. */
  account?: string;
  /** How integer columns arrive: "bigint" (default) or "string". */
  int64?: "bigint" | "string";
}

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
}

export interface Statement {
  sql: string;
  params?: Param[];
}

export interface BatchOptions {
  /** Aborts the call (and the request in flight); the Promise rejects with code "canceled". */
  signal?: AbortSignal;
  isolationLevel?: "read_committed" | "repeatable_read" | "serializable";
  readOnly?: boolean;
  timeoutMs?: number;
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
  query<R = Value[]>(database: string, sql: string, params?: Param[], opts?: QueryOptions): Promise<QueryResult<R>>;
  /** Streams rows to onRow as they arrive; when onRow returns a Promise the stream waits for it. */
  queryStream<R = Value[]>(
    database: string,
    sql: string,
    params: Param[] | undefined,
    onRow: (row: R, index: number, columns: Column[]) => void | Promise<void>,
    opts?: QueryOptions,
  ): Promise<StreamResult>;
  /** Runs the statements in one transaction: all or nothing. */
  batch(database: string, statements: (Statement | string)[], opts?: BatchOptions): Promise<QueryResult[]>;
  listDatabases(): Promise<Database[]>;
  getDatabase(name: string): Promise<Database>;
  createDatabase(name: string, opts?: CreateDatabaseOptions): Promise<Database>;
  updateDatabase(name: string, changes: UpdateDatabaseOptions): Promise<Database>;
  deleteDatabase(name: string): Promise<void>;
  /** Uploads a File/Blob and waits for the import job; rejects with a BitkitError (code "job_failed") when the job fails. */
  importFile(database: string, file: Blob, opts: ImportOptions): Promise<Job>;
  /** Runs an export job to completion. */
  exportData(database: string, opts: ExportOptions): Promise<ExportResult>;
  createApiKey(): Promise<APIKey>;
  revokeApiKey(key: string): Promise<void>;
  revokeAllApiKeys(): Promise<void>;
  account(): Promise<Account>;
  /** Logs in with username/password now (otherwise done on first use). */
  login(): Promise<void>;
  /** Forgets the access token (and its cached copy). */
  logout(): Promise<void>;
}

/** Every rejection of the API is a BitkitError. */
export declare class BitkitError extends Error {
  readonly name: "BitkitError";
  /** HTTP status; 0 when no answer arrived (network, CORS, bad input). */
  readonly status: number;
  /** Stable snake_case code: "not_found", "sql_error", "unauthorized", "network_error", "invalid_argument", "job_failed", … */
  readonly code: string;
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
  /** URL of wasm_exec.js; default new URL("./wasm_exec.js", import.meta.url). Skipped when globalThis.Go exists. */
  wasmExecURL?: string | URL;
}

/** Loads and starts the wasm module once; resolves with the API namespace (also globalThis.bitkit). */
export declare function load(opts?: LoadOptions): Promise<Bitkit>;
