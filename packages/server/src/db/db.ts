/**
 * The one small datastore interface. Two drivers implement it: PGlite (embedded, on disk) and
 * `pg` (PostgreSQL). Both return int8 as JS numbers, timestamps as Date and jsonb as objects,
 * so code above this line never branches on the driver.
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
  /**
   * The same with each row as an array of its columns, in select order: for loops over many
   * rows (`audit verify`), where an object per row with named keys costs more to build and read.
   */
  queryTuples<T extends unknown[]>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export type DatastoreKind = "pglite" | "postgres";

export interface Db extends Queryable {
  readonly kind: DatastoreKind;
  /** Runs fn in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * LISTEN on a channel (a fixed identifier from our code, never user input); resolves with the
   * function that stops listening. PostgreSQL: one connection per process shared by every
   * channel, reconnected a second after it breaks (notifications meanwhile are lost, so callers
   * also reload periodically); PGlite: in-process.
   */
  listen(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** SQLSTATE of a database error, or undefined for anything else. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
