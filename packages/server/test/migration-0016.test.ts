import { verifyInclusion } from "@trellis/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORE_MIGRATIONS, migrate } from "../src/db/migrate";
import { loadNodes } from "../src/modules/transparency/log";
import { verifyLog } from "../src/modules/transparency/verify-log";
import { DATASTORES, fillAuditLog, startTestApp, type TestApp, tamper } from "./harness";

/**
 * Migration 0016 (the stored tree keeps levels 4 and up) over a log the previous version built:
 * its audit_tree held levels 1–3 too and had no CHECK on them. The migration removes those rows
 * (derived data: hashes of leaves that stay), after which the log verifies, proofs verify and
 * the sequencer goes on; no such row can be added again.
 */
describe.each(DATASTORES)(
  "migration 0016 over a tree the previous version stored on %s",
  (kind) => {
    let t: TestApp;
    let applied: string[];
    let lower: number;
    beforeAll(async () => {
      t = await startTestApp(kind);
      await fillAuditLog(t, 100);
      // The previous version's schema and rows: no CHECK, and every node of levels 1–3 stored
      // (the hashes the previous sequencer wrote, rebuilt here from the same leaves).
      await t.db.query("ALTER TABLE trellis.audit_tree DROP CONSTRAINT audit_tree_stored_levels");
      const keys: Array<[number, number]> = [];
      for (let level = 1; level <= 3; level++)
        for (let i = 0; i < Math.floor(100 / 2 ** level); i++) keys.push([level, i]);
      const src = await loadNodes(t.db, keys);
      for (const [level, idx] of keys)
        await t.db.query("INSERT INTO trellis.audit_tree (level, idx, hash) VALUES ($1, $2, $3)", [
          level,
          idx,
          src.get(level, idx),
        ]);
      lower = keys.length;
      await tamper(t.db, "schema_migrations", (q) =>
        q.query(
          "DELETE FROM trellis.schema_migrations WHERE scope = 'core' AND name = '0016_audit_tree_upper_levels.sql'",
        ),
      );
      applied = await migrate(t.db, [{ scope: "core", dir: CORE_MIGRATIONS }]);
    });
    afterAll(() => t?.close());

    it("applies and removes the lower levels' rows, and only those", async () => {
      expect(lower).toBe(50 + 25 + 12);
      expect(applied).toEqual(["core/0016_audit_tree_upper_levels.sql"]);
      const { rows } = await t.db.query<{ level: number; n: number }>(
        "SELECT level, count(*)::int AS n FROM trellis.audit_tree GROUP BY level ORDER BY level",
      );
      expect(rows.map((r) => [Number(r.level), r.n])).toEqual([
        [4, 6],
        [5, 3],
        [6, 1],
      ]);
    });

    it("leaves a log that verifies, with proofs that verify, and refuses lower rows again", async () => {
      expect(await verifyLog(t.db)).toMatchObject({ ok: true, tree_size: 100 });
      const { rows } = await t.db.query<{ event_id: string; hash: Uint8Array }>(
        `SELECT e.event_id, l.hash FROM trellis.audit_leaves l
         JOIN trellis.audit_events e ON e.seq = l.event_seq WHERE l.leaf_index = 37`,
      );
      const res = await t.call({
        method: "GET",
        url: `/admin/v1/audit/events/${rows[0]?.event_id}/proof?size=93`,
      });
      expect(res.status).toBe(200);
      const b = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
      expect(
        verifyInclusion(
          37,
          93,
          new Uint8Array(rows[0]?.hash as Uint8Array),
          res.body.proof.map(b),
          b(res.body.root_hash),
        ),
      ).toBe(true);
      await expect(
        t.db.query("INSERT INTO trellis.audit_tree (level, idx, hash) VALUES (2, 99, $1)", [
          Buffer.alloc(32),
        ]),
      ).rejects.toThrow(/audit_tree_stored_levels/);
      // The sequencer goes on from the migrated tree (30 more events, and the proof read's own).
      await fillAuditLog(t, 30, 101);
      expect(await verifyLog(t.db)).toMatchObject({ ok: true, tree_size: 131, events: 131 });
    });
  },
);
