import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Queryable } from "../src/db/db";
import { sqlState } from "../src/db/db";
import { asGateway, createApp, DATASTORES, startTestApp, type TestApp } from "./harness";

/**
 * The audit event's row rules (migration 0013): one trigger instead of seven CHECK constraints,
 * the same rules for every role, on INSERT and UPDATE, with SQLSTATE 23514 and the rule's name.
 */
describe.each(DATASTORES)("audit event row rules on %s", (kind) => {
  let t: TestApp;
  let app: string;

  beforeAll(async () => {
    // A long merge delay: the rows these tests insert need not become leaves.
    t = await startTestApp(kind, { TRELLIS_AUDIT_MERGE_DELAY_MS: "60000" });
    app = await createApp(t, "Rules");
  });
  afterAll(() => t?.close());

  const good = {
    actor_id: "alice",
    actor_role: "app_user",
    outcome: "allowed",
    error_code: null as string | null,
    diff: null as string | null,
  };
  type Row = typeof good;
  const insert = (q: Queryable, r: Row) =>
    q.query(
      `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
         resource_type, app_id, outcome, error_code, request_id, diff)
       VALUES ('evt_rule_' || md5(random()::text), now(), $1, $2, 'submission.create', 'submission',
         $3, $4, $5, 'req_rules', $6::jsonb)`,
      [r.actor_id, r.actor_role, app, r.outcome, r.error_code, r.diff],
    );
  const refusal = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      return { code: sqlState(err), message: (err as Error).message };
    }
    return { code: "no error", message: "" };
  };
  const count = async () =>
    (
      await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.audit_events WHERE request_id = 'req_rules'",
      )
    ).rows[0]?.n;

  const bad: Array<[string, Partial<Row>]> = [
    ["audit_events_actor_role", { actor_role: "root" }],
    ["audit_events_outcome", { outcome: "maybe", error_code: "x" }],
    ["audit_events_error_code", { outcome: "denied" }],
    ["audit_events_error_code", { error_code: "policy_denied" }],
    ["audit_events_diff", { diff: "[1, 2]" }],
    ["audit_events_diff", { diff: JSON.stringify({ note: "x".repeat(9000) }) }],
  ];

  it("a valid event is stored, by the owner and by the gateway for its app", async () => {
    const before = await count();
    await insert(t.db, good);
    await asGateway(t.db, { app, sub: "alice" }, (q) => insert(q, good)); // rolled back after
    await insert(t.db, { ...good, diff: JSON.stringify({ state: { from: "a", to: "b" } }) });
    await insert(t.db, { ...good, outcome: "denied", error_code: "policy_denied" });
    expect(await count()).toBe((before ?? 0) + 3);
  });

  it.each(bad)(
    "the owner's insert breaking %s is refused with 23514 and stores nothing",
    async (rule, change) => {
      const before = await count();
      const r = await refusal(insert(t.db, { ...good, ...change }));
      expect(r.code).toBe("23514");
      expect(r.message).toContain(rule);
      expect(await count()).toBe(before);
    },
  );

  it("the gateway's insert is held to the same rules", async () => {
    for (const [rule, change] of bad) {
      const r = await asGateway(t.db, { app, sub: "alice" }, (q) =>
        refusal(insert(q, { ...good, ...change })),
      );
      expect(r.code, rule).toBe("23514");
      expect(r.message, rule).toContain(rule);
    }
  });

  it("an update the append-only guard lets through (an erasure) must keep the rules too", async () => {
    await insert(t.db, { ...good, actor_id: "erin" });
    const { rows } = await t.db.query<{ seq: number }>(
      "SELECT seq FROM trellis.audit_events WHERE actor_id = 'erin' AND request_id = 'req_rules'",
    );
    const seq = rows[0]?.seq;
    // Let the guard pass: the event is a leaf at or above personal_from, inside an erasure.
    const r = await refusal(
      t.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO trellis.audit_leaves (leaf_index, event_seq, hash)
           SELECT tree_size + 1000000, $1, decode(repeat('00', 32), 'hex') FROM trellis.audit_log_state`,
          [seq],
        );
        await tx.query("SELECT set_config('trellis.audit_erasure', '1', true)");
        // A commitment of 16 bytes instead of 32.
        await tx.query(
          `UPDATE trellis.audit_events SET actor_id = NULL, erased_by = 1,
             erased_commitment = decode(repeat('00', 16), 'hex') WHERE seq = $1`,
          [seq],
        );
      }),
    );
    expect(r.code).toBe("23514");
    expect(r.message).toContain("audit_events_erasure");
    const after = await t.db.query<{ actor_id: string | null }>(
      "SELECT actor_id FROM trellis.audit_events WHERE seq = $1",
      [seq],
    );
    expect(after.rows).toEqual([{ actor_id: "erin" }]);
  });

  it("the table has no CHECK constraint left to plan at every statement", async () => {
    const { rows } = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_constraint
        WHERE conrelid = 'trellis.audit_events'::regclass AND contype = 'c'`,
    );
    expect(rows[0]?.n).toBe(0);
  });
});
