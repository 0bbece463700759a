import pg from "pg";
import type { Db, Queryable } from "./db";

// int8 (count, identity columns) as number, as PGlite does. Our int8 values stay far below 2^53.
const typeParsers = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

const wrap = (c: pg.Pool | pg.PoolClient): Queryable => ({
  async query(sql, params) {
    const r = await c.query(sql, params);
    return { rows: r.rows, rowCount: r.rowCount ?? r.rows.length };
  },
  async exec(sql) {
    await c.query(sql);
  },
});

/** Opens a pool on PostgreSQL. `max` bounds connections per process. */
export async function openPostgres(url: string, max = 10): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max, types: typeParsers });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on("error", () => {});
  const probe = await pool.connect(); // fail fast with a clear error if unreachable
  probe.release();
  const base = wrap(pool);
  return {
    kind: "postgres",
    ...base,
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const out = await fn(wrap(client));
        await client.query("COMMIT");
        return out;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
