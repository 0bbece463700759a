import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctxParam, type GatewayCtx } from "../src/gateway/gateway-ctx";
import { asGateway, DATASTORES, startTestApp, type TestApp } from "./harness";

/** Text PostgreSQL can hold: no NUL, no lone surrogate (UTF-8 round-trips it). */
const pgText = fc
  .string({ unit: "binary", maxLength: 40 })
  .filter((s) => !s.includes("\u0000") && Buffer.from(s, "utf8").toString("utf8") === s);
/** Strings made of the characters a composite literal gives meaning to. */
const tricky = fc
  .array(fc.constantFrom('"', "\\", ",", "(", ")", " ", "\t", "\n", "x", "é", "😀", "''"), {
    maxLength: 12,
  })
  .map((a) => a.join(""));
const value = fc.oneof(pgText, tricky);
const ctxArb: fc.Arbitrary<GatewayCtx> = fc.record({
  app_id: value,
  sub: value,
  scopes: value,
  labels: value,
  env: value,
  app_env: value,
  blocks: value,
  policy_ids: value,
  token_id: value,
  event_id: value,
  request_id: value,
  at: fc
    .date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2200-01-01T00:00:00Z") })
    .filter((d) => !Number.isNaN(d.getTime()))
    .map((d) => d.toISOString()),
  diff: fc.option(fc.dictionary(pgText, fc.oneof(value, fc.integer(), fc.boolean())), {
    nil: undefined,
  }),
});

const FIELDS = `(c).app_id, (c).sub, (c).scopes, (c).labels, (c).env, (c).app_env, (c).blocks,
  (c).policy_ids, (c).token_id, (c).event_id, (c).request_id,
  (extract(epoch FROM (c).at) * 1000)::float8 AS at_ms, (c).diff`;

describe.each(DATASTORES)("the gateway context (trellis.gw_ctx) on %s", (kind) => {
  let f: TestApp;
  beforeAll(async () => {
    f = await startTestApp(kind);
  });
  afterAll(async () => f?.close());

  const roundTrip = async (ctx: GatewayCtx) => {
    const { rows } = await f.db.query<Record<string, unknown>>(
      `SELECT ${FIELDS} FROM (SELECT $1::trellis.gw_ctx AS c) x`,
      [ctxParam(ctx)],
    );
    return rows[0] as Record<string, unknown>;
  };

  it("arrives field by field exactly as sent, whatever the text holds", async () => {
    await fc.assert(
      fc.asyncProperty(ctxArb, async (ctx) => {
        const got = await roundTrip(ctx);
        const { at, diff, ...texts } = ctx;
        for (const [k, v] of Object.entries(texts)) expect(got[k], k).toBe(v);
        expect(got.at_ms).toBe(Date.parse(at));
        expect(got.diff).toEqual(diff === undefined ? null : JSON.parse(JSON.stringify(diff)));
      }),
      { numRuns: 150 },
    );
  });

  it("cannot move a value into the next claim: quotes, commas and parentheses stay in their field", async () => {
    const base: GatewayCtx = {
      app_id: "app_1",
      sub: "bob",
      scopes: "read",
      labels: "",
      env: "dev",
      app_env: "dev",
      blocks: "owner-read",
      policy_ids: "",
      token_id: "tok",
      event_id: "evt",
      request_id: "req",
      at: "2026-12-02T11:00:00.000Z",
    };
    for (const sub of ['bob","create read', 'bob\\","admin', "bob),(x", 'bob""', "bob\\"]) {
      const got = await roundTrip({ ...base, sub });
      expect(got.sub).toBe(sub);
      expect(got.scopes).toBe("read");
      expect(got.app_id).toBe("app_1");
    }
    // Empty text stays empty text, and only a missing diff is null.
    const empty = await roundTrip({ ...base, labels: "", policy_ids: "" });
    expect(empty.labels).toBe("");
    expect(empty.policy_ids).toBe("");
    expect(empty.diff).toBeNull();
  });

  it("a malformed value is refused by the database, not read as something else", async () => {
    await expect(f.db.query("SELECT $1::trellis.gw_ctx", ['("a","b")'])).rejects.toThrow();
    await expect(
      f.db.query("SELECT $1::trellis.gw_ctx", [
        '("a","b","c","d","e","f","g","h","i","j","k","not a time",)',
      ]),
    ).rejects.toThrow();
  });

  it("scope and block claims match whole words of the lists they were set from", async () => {
    const check = (scopes: string, blocks: string) =>
      asGateway(f.db, { app: "app_1", sub: "bob", scopes, blocks }, async (q) => {
        const { rows } = await q.query<Record<string, boolean>>(
          `SELECT trellis.has_scope('read') AS read, trellis.has_scope('create') AS create,
                  trellis.has_scope('rea') AS rea, trellis.has_scope('read:all') AS read_all,
                  trellis.has_block('owner-write') AS owner_write,
                  trellis.has_block('owner') AS owner, trellis.has_block('') AS nothing,
                  trellis.has_scope('create read') AS two_words`,
        );
        return rows[0];
      });
    expect(await check("create read", "owner-read owner-write")).toEqual({
      read: true,
      create: true,
      rea: false,
      read_all: false,
      owner_write: true,
      owner: false,
      nothing: false,
      two_words: false,
    });
    expect(await check("read:all", "")).toEqual({
      read: false,
      create: false,
      rea: false,
      read_all: true,
      owner_write: false,
      owner: false,
      nothing: false,
      two_words: false,
    });
    // No claims set at all (not a governed request): nothing matches.
    const { rows } = await f.db.query<{ s: boolean; b: boolean }>(
      "SELECT trellis.has_scope('read') AS s, trellis.has_block('owner-read') AS b",
    );
    expect(rows[0]).toEqual({ s: false, b: false });
  });
});
