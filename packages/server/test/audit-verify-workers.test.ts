import { availableParallelism } from "node:os";
import { afterAll, beforeAll, expect, it } from "vitest";
import { verifyLog, verifyWorkers } from "../src/modules/transparency/verify-log";
import { describeOnPostgres, fillAuditLog, startTestApp, type TestApp, tamper } from "./harness";

/**
 * `audit verify` on PostgreSQL reads and checks pages of leaves in worker threads (as
 * `trellis audit verify` does on large logs): the same report as one thread, problems named on
 * pages past the first, and a worker's failure is the verify's error, not a hang.
 */
describeOnPostgres("audit verify with worker threads", () => {
  let t: TestApp;
  const N = 25_000; // three pages of 10 000
  const withWorkers = () => ({ workers: { url: t.url as string, count: 2, minLeaves: 0 } });
  beforeAll(async () => {
    t = await startTestApp("postgres");
    await fillAuditLog(t, N);
  }, 120_000);
  afterAll(() => t?.close());

  it("gives the report one thread gives, over several pages", async () => {
    const one = await verifyLog(t.db);
    expect(one).toMatchObject({ ok: true, events: N });
    expect(one.checkpoints).toBeGreaterThan(0);
    expect(await verifyLog(t.db, withWorkers())).toEqual(one);
  });

  it("names a missing leaf at a page's start and a changed event deep in the log", async () => {
    const { rows } = await t.db.query<{ event_seq: number; hash: Uint8Array }>(
      "SELECT event_seq, hash FROM trellis.audit_leaves WHERE leaf_index = 10000",
    );
    const leaf = rows[0] as { event_seq: number; hash: Uint8Array };
    await tamper(t.db, "audit_leaves", (q) =>
      q.query("DELETE FROM trellis.audit_leaves WHERE leaf_index = 10000"),
    );
    expect((await verifyLog(t.db, withWorkers())).problem).toMatchObject({
      kind: "leaf_missing",
      leaf_index: 10000,
      message: expect.stringContaining("found leaf 10001"),
    });
    await tamper(t.db, "audit_leaves", (q) =>
      q.query(
        "INSERT INTO trellis.audit_leaves (leaf_index, event_seq, hash) VALUES (10000, $1, $2)",
        [leaf.event_seq, leaf.hash],
      ),
    );
    expect((await verifyLog(t.db, withWorkers())).ok).toBe(true);

    const { rows: victim } = await t.db.query<{ event_id: string }>(
      `SELECT e.event_id FROM trellis.audit_events e
         JOIN trellis.audit_leaves l ON l.event_seq = e.seq WHERE l.leaf_index = 17345`,
    );
    const id = victim[0]?.event_id as string;
    await tamper(t.db, "audit_events", (q) =>
      q.query("UPDATE trellis.audit_events SET outcome = 'denied' WHERE event_id = $1", [id]),
    );
    const r = await verifyLog(t.db, withWorkers());
    expect(r).toMatchObject({ ok: false, events: 17345 });
    expect(r.problem).toMatchObject({ kind: "event_changed", leaf_index: 17345, event_id: id });
    expect(r.problem).toEqual((await verifyLog(t.db)).problem);
  });

  it("fails with the worker's own error when a worker cannot connect, and does not hang", async () => {
    const bad = new URL(t.url as string);
    bad.pathname = "/trellis_no_such_database";
    await expect(
      verifyLog(t.db, { workers: { url: bad.toString(), count: 2, minLeaves: 0 } }),
    ).rejects.toThrow(/trellis_no_such_database/);
  });

  it("are used on PostgreSQL with two cores or more, never on the embedded store", () => {
    expect(verifyWorkers(undefined)).toBeUndefined();
    const cores = availableParallelism();
    expect(verifyWorkers(t.url)).toEqual(
      cores >= 2 ? { url: t.url, count: Math.min(cores, 4) } : undefined,
    );
  });
});

describeOnPostgres("audit verify with worker threads, over a pruned log", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("postgres", { TRELLIS_AUDIT_RETENTION_DAYS: "30" });
    await fillAuditLog(t, 15_000);
  }, 120_000);
  afterAll(() => t?.close());

  it("counts the pruned leaves as one thread does, and names the rows gone once the prune event is deleted", async () => {
    t.clock.advance(31 * 86_400); // every event is now past retention
    const res = await t.app.transparency.prune();
    expect(res.deleted).toBe(15_000);
    for (;;) if (!(await t.app.transparency.tick())) break; // the audit.prune event itself
    const one = await verifyLog(t.db);
    expect(one).toMatchObject({ ok: true, pruned: 15_000, events: 1 });
    const workers = { workers: { url: t.url as string, count: 2, minLeaves: 0 } };
    expect(await verifyLog(t.db, workers)).toEqual(one);
    // Without the prune event the log vouches for no prune: the rows below its mark are missing.
    await tamper(t.db, "audit_events", (q) =>
      q.query("DELETE FROM trellis.audit_events WHERE action = 'audit.prune'"),
    );
    const r = await verifyLog(t.db, workers);
    expect(r.problem).toMatchObject({ kind: "event_missing", leaf_index: 0 });
    expect(r.problem).toEqual((await verifyLog(t.db)).problem);
  });
});
