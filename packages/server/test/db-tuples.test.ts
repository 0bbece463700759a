import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATASTORES, type FreshDb, freshDb } from "./harness";

/**
 * Queryable.queryTuples (rows as arrays, for `audit verify`'s loops) gives what query gives,
 * column for column, on both drivers: int8 as number, bytea as bytes, jsonb and text[] parsed,
 * nulls, with and without parameters, and inside a transaction.
 */
describe.each(DATASTORES)("queryTuples on %s", (kind) => {
  let f: FreshDb;
  beforeAll(async () => {
    f = await freshDb(kind);
  });
  afterAll(() => f?.drop());

  const SQL = `SELECT g::bigint AS n, 'r' || g AS label, NULL::text AS none,
                      decode(lpad(to_hex(g), 2, '0'), 'hex') AS bytes,
                      jsonb_build_object('g', g) AS doc, ARRAY['a', g::text] AS list
                 FROM generate_series(1, 3) g WHERE g >= $1 ORDER BY g`;

  it("gives each row's columns in select order, parsed as query parses them", async () => {
    const tuples = await f.db.queryTuples<unknown[]>(SQL, [2]);
    const { rows } = await f.db.query<Record<string, unknown>>(SQL, [2]);
    expect(tuples).toHaveLength(2);
    expect(tuples.map((t) => t.length)).toEqual([6, 6]);
    expect(tuples).toEqual(rows.map((r) => [r.n, r.label, r.none, r.bytes, r.doc, r.list]));
    const [n, label, none, bytes, doc, list] = tuples[0] as unknown[];
    expect(n).toBe(2);
    expect(label).toBe("r2");
    expect(none).toBeNull();
    expect(Buffer.from(bytes as Uint8Array).toString("hex")).toBe("02");
    expect(doc).toEqual({ g: 2 });
    expect(list).toEqual(["a", "2"]);
  });

  it("works without parameters and inside a transaction, and reports SQL errors", async () => {
    expect(await f.db.queryTuples("SELECT 1::bigint, 'x'")).toEqual([[1, "x"]]);
    const inTx = await f.db.transaction((tx) => tx.queryTuples<[number]>("SELECT 7::bigint"));
    expect(inTx).toEqual([[7]]);
    await expect(f.db.queryTuples("SELECT * FROM no_such_table")).rejects.toMatchObject({
      code: "42P01",
    });
  });
});
