import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { verifyLog } from "../src/modules/transparency/verify-log";
import { DATASTORES, startTestApp, type TestApp } from "./harness";

describe.each(DATASTORES)("audit retention on %s", (kind) => {
  let t: TestApp;
  const touch = (n: number) =>
    Promise.all(
      Array.from({ length: n }, () => t.call({ method: "GET", url: "/admin/v1/templates" })),
    );
  beforeAll(async () => {
    t = await startTestApp(kind, { TRELLIS_AUDIT_RETENTION_DAYS: "30" });
    await touch(6);
    await t.app.transparency.flush();
    t.clock.advance(31 * 86_400);
    await touch(4);
    await t.app.transparency.flush();
  });
  afterAll(() => t?.close());

  it("prunes events past retention to their hashes; the log still verifies and says so", async () => {
    const { rows: before } = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events",
    );
    const res = await t.app.transparency.prune();
    expect(res.below).toBeGreaterThanOrEqual(6);
    expect(res.deleted).toBe(res.below);
    const { rows: after } = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events",
    );
    expect(after[0]?.n).toBe((before[0]?.n as number) - res.deleted + 1); // + the prune event
    await t.app.transparency.flush();
    const report = await verifyLog(t.db);
    expect(report).toMatchObject({ ok: true, pruned: res.below });
    const { rows: marks } = await t.db.query<{ diff: { below_leaf: number } }>(
      "SELECT diff FROM trellis.audit_events WHERE action = 'audit.prune'",
    );
    expect(marks.map((m) => m.diff.below_leaf)).toEqual([res.below]);
    expect((await t.app.transparency.prune()).deleted).toBe(0); // nothing more is old enough
  });

  it("outside a prune, deleting is refused; a forged prune mark is caught by audit verify", async () => {
    const del = await t.db
      .query("DELETE FROM trellis.audit_events WHERE action = 'template.list'")
      .then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(del).toBe("42501");
    // A malicious owner sets the setting by hand and deletes recent rows the log never pruned.
    const { rows: size } = await t.db.query<{ n: number }>(
      "SELECT tree_size::int AS n FROM trellis.audit_log_state",
    );
    await t.db.transaction(async (tx) => {
      await tx.query("SELECT set_config('trellis.audit_prune_below', $1, true)", [
        String(size[0]?.n),
      ]);
      await tx.query(
        `DELETE FROM trellis.audit_events e USING trellis.audit_leaves l
          WHERE l.event_seq = e.seq AND e.action = 'template.list'`,
      );
    });
    const report = await verifyLog(t.db);
    expect(report.ok).toBe(false);
    expect(report.problem?.kind).toBe("event_missing");
  });
});
