import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { verifyCheckpoint } from "@trellis/sdk/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { verifyLogFile } from "../src/modules/transparency/log-export";
import { checkPrune, verifyLog } from "../src/modules/transparency/verify-log";
import {
  DATASTORES,
  exportLogFile,
  newNoteSigner,
  startTestApp,
  type TestApp,
  tamper,
} from "./harness";

describe("a prune's signed statement", () => {
  const log = newNoteSigner();
  const statement = (below: number, s = log) =>
    s.signStatement("audit.prune", {
      event: "evt_p",
      below_leaf: below,
      cutoff: "2026-01-01T00:00:00.000Z",
      retention_days: 30,
    });
  const prune = (below: number, st: unknown) => ({
    event_id: "evt_p",
    diff: { below_leaf: below, statement: st },
  });
  it("counts only when the log's key signed this very mark, below the prune itself", () => {
    expect(checkPrune(prune(5, statement(5)), 9, log.verifierKey)).toEqual({ below: 5 });
    expect(checkPrune(prune(9, statement(9)), 9, log.verifierKey)).toEqual({ below: 9 });
    const why = (ev: { event_id: string; diff: unknown }, at = 9) => {
      const r = checkPrune(ev, at, log.verifierKey);
      if (!("problem" in r)) throw new Error("accepted");
      expect(r.problem).toMatchObject({ kind: "prune_forged", event_id: "evt_p", leaf_index: at });
      return r.problem.message;
    };
    expect(why(prune(5, undefined))).toMatch(/no signed statement/);
    expect(why(prune(5, statement(5, newNoteSigner())))).toMatch(/no signature by this key/);
    // The same name with another key, a checkpoint, an erasure's statement: none is a prune.
    expect(why(prune(5, statement(5, newNoteSigner(log.origin))))).toMatch(
      /no signature by this key/,
    );
    expect(why(prune(5, log.signCheckpoint(5, new Uint8Array(32))))).toMatch(/not an audit.prune/);
    expect(why(prune(5, log.signStatement("audit.erase", { erased: 0, events: "x" })))).toMatch(
      /not an audit.prune/,
    );
    expect(why(prune(8, statement(5)))).toMatch(/says below_leaf 8, its statement 5/);
    expect(why(prune(12, statement(12)))).toMatch(/reaches past itself/);
    // The very statement of another prune event, replayed in a new one: a copy.
    const replay = checkPrune(
      { event_id: "evt_q", diff: { below_leaf: 5, statement: statement(5) } },
      9,
      log.verifierKey,
    );
    expect("problem" in replay && replay.problem.message).toMatch(
      /signed for another event \(evt_p\)/,
    );
    // …and no statement reads as a checkpoint.
    expect(() => verifyCheckpoint(statement(5), log.verifierKey)).toThrow(/not a decimal/);
    // One byte of the signed text changed.
    expect(why(prune(6, (statement(5) as string).replace("below_leaf 5", "below_leaf 6")))).toMatch(
      /no signature by this key/,
    );
  });
});

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

  it("a pruned leaf's stored hash cut short is named, not taken as a node of the tree", async () => {
    // A pruned leaf's hash is all that stands for its event; one that is not 32 bytes (its
    // CHECK dropped by the owner) must not be padded into some other hash.
    const { rows } = await t.db.query<{ hash: Uint8Array }>(
      "SELECT hash FROM trellis.audit_leaves WHERE leaf_index = 1",
    );
    const original = rows[0]?.hash as Uint8Array;
    await tamper(t.db, "audit_leaves", async (q) => {
      await q.query("ALTER TABLE trellis.audit_leaves DROP CONSTRAINT audit_leaves_hash_check");
      await q.query(
        "UPDATE trellis.audit_leaves SET hash = substring(hash FROM 1 FOR 31) WHERE leaf_index = 1",
      );
    });
    try {
      const report = await verifyLog(t.db);
      expect(report.ok).toBe(false);
      expect(report.problem).toMatchObject({ kind: "event_changed", leaf_index: 1 });
      expect(report.problem?.message).toMatch(/not a SHA-256 hash/);
    } finally {
      await tamper(t.db, "audit_leaves", async (q) => {
        await q.query("UPDATE trellis.audit_leaves SET hash = $1 WHERE leaf_index = 1", [original]);
        await q.query(
          "ALTER TABLE trellis.audit_leaves ADD CONSTRAINT audit_leaves_hash_check CHECK (octet_length(hash) = 32)",
        );
      });
    }
    expect((await verifyLog(t.db)).ok).toBe(true);
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

  it("a prune event forged with database access alone does not make deleted events 'pruned'", async () => {
    // The owner writes its own audit.prune over the rows it deleted above, with the real prune's
    // statement copied in (it signs another mark), and lets the sequencer log it.
    const { rows: real } = await t.db.query<{ diff: Record<string, unknown> }>(
      "SELECT diff FROM trellis.audit_events WHERE action = 'audit.prune' ORDER BY seq LIMIT 1",
    );
    expect(typeof real[0]?.diff.statement).toBe("string");
    const { rows: size } = await t.db.query<{ n: number }>(
      "SELECT tree_size::int AS n FROM trellis.audit_log_state",
    );
    const forge = async (eventId: string, diff: Record<string, unknown>) => {
      await t.db.query(
        `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
           resource_type, policy_ids, outcome, request_id, diff)
         VALUES ($1, now(), 'system:retention', 'admin', 'audit.prune', 'audit_log', '{}',
                 'allowed', 'retention', $2::jsonb)`,
        [eventId, JSON.stringify(diff)],
      );
      await t.app.transparency.flush();
      return verifyLog(t.db);
    };
    const copied = await forge("event_forged_prune_0001", {
      ...real[0]?.diff,
      below_leaf: size[0]?.n,
    });
    expect(copied.ok).toBe(false);
    expect(copied.problem).toMatchObject({
      kind: "prune_forged",
      event_id: "event_forged_prune_0001",
    });
    expect(copied.problem?.message).toMatch(/its statement/);
    // An export holds the forged prune too (the sequencer logged and signed it): an auditor
    // with only the file and the key names it the same way.
    await t.app.transparency.stop();
    const dir = mkdtempSync(join(tmpdir(), "trellis-prune-"));
    try {
      const { file } = await exportLogFile(t, dir);
      const fromFile = await verifyLogFile(file, t.app.transparency.signer.verifierKey);
      expect(fromFile.problem).toMatchObject({
        kind: "prune_forged",
        event_id: "event_forged_prune_0001",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(DATASTORES)("audit retention at start on %s", (kind) => {
  it("a (re)start prunes at once: a shorter retention takes effect without waiting an hour", async () => {
    const t = await startTestApp(kind, { TRELLIS_AUDIT_RETENTION_DAYS: "30" });
    try {
      for (let i = 0; i < 3; i++) await t.call({ method: "GET", url: "/admin/v1/templates" });
      await t.app.transparency.flush();
      t.clock.advance(31 * 86_400);
      await t.call({ method: "GET", url: "/admin/v1/templates" });
      await t.app.transparency.flush();
      const prunes = async () =>
        (
          await t.db.query<{ below: number }>(
            "SELECT (diff->>'below_leaf')::int AS below FROM trellis.audit_events WHERE action = 'audit.prune'",
          )
        ).rows.map((r) => r.below);
      expect(await prunes()).toEqual([]);
      await t.app.transparency.stop();
      await t.app.transparency.start();
      await t.app.transparency.stop(); // waits for the prune the start began
      const [below] = await prunes();
      expect(below).toBeGreaterThanOrEqual(3);
      await t.app.transparency.flush();
      expect(await verifyLog(t.db)).toMatchObject({ ok: true, pruned: below });
    } finally {
      await t.close();
    }
  });
});
