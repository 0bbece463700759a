import { PGlite, types } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import type { Db, Queryable } from "./db";

// PGlite already returns int8 as number; timestamptz as Date; jsonb parsed. Made explicit here
// so both drivers agree by construction, not by luck.
const parsers = { [types.INT8]: (v: string) => Number(v) };

const wrap = (q: Pick<PGlite, "query" | "exec">): Queryable => ({
  async query(sql, params) {
    const r = await q.query(sql, params as unknown[] | undefined, { parsers });
    return { rows: r.rows as never[], rowCount: r.affectedRows ?? r.rows.length };
  },
  async queryTuples<T extends unknown[]>(sql: string, params?: unknown[]) {
    const r = await q.query<T>(sql, params, { parsers, rowMode: "array" });
    return r.rows;
  },
  async exec(sql) {
    await q.exec(sql);
  },
});

/**
 * Opens PGlite in a folder on disk, or in memory when `dataDir` is undefined (tests).
 * The caller holds the data-dir lock: two processes must never open one PGlite folder.
 */
export async function openPglite(dataDir?: string): Promise<Db> {
  // Extensions templates' migrations create (bookings: btree_gist); PGlite must have them loaded.
  const pg = await PGlite.create({ dataDir, extensions: { btree_gist } });
  const base = wrap(pg);
  return {
    kind: "pglite",
    ...base,
    transaction: (fn) => pg.transaction((tx) => fn(wrap(tx))),
    listen: async (channel, onMessage) => {
      const stop = await pg.listen(channel, onMessage);
      return async () => stop();
    },
    close: () => pg.close(),
  };
}
