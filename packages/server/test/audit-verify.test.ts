import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalJson, leafHash } from "@trellis/sdk/verify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DatastoreKind, Queryable } from "../src/db/db";
import { eventSalt, personalCommitment } from "../src/modules/transparency/log";
import { verifyLogFile } from "../src/modules/transparency/log-export";
import { STORED_FROM_LEVEL } from "../src/modules/transparency/merkle";
import {
  nodesCompletedIn,
  readAnchors,
  type VerifyOptions,
  verifyLog,
  verifyLog as verifyLogIn,
} from "../src/modules/transparency/verify-log";
import {
  createApp,
  DATASTORES,
  exportLogFile,
  fillAuditLog,
  issueToken,
  newNoteSigner,
  startTestApp,
  type TestApp,
  tamper as tamperAsOwner,
} from "./harness";

/**
 * The six ways to tamper with a stored log, each done in SQL as the owner (who must first
 * switch off the append-only triggers), and each caught by `audit verify` naming what.
 */
/**
 * Each case runs on each datastore, and on PostgreSQL once more with the pages read and checked
 * by worker threads (as `trellis audit verify` does there on large logs): same problems found.
 */
const MODES: Array<[DatastoreKind, "in-process" | "workers"]> = DATASTORES.flatMap(
  (kind): Array<[DatastoreKind, "in-process" | "workers"]> =>
    kind === "postgres"
      ? [
          [kind, "in-process"],
          [kind, "workers"],
        ]
      : [[kind, "in-process"]],
);
describe.each(MODES)("audit verify catches tampering on %s (%s)", (kind, mode) => {
  let t: TestApp;
  let ids: string[];
  beforeEach(async () => {
    t = await startTestApp(kind);
    const app = await createApp(t);
    const token = await issueToken(t, app, "ana", ["create", "read"]);
    for (let i = 0; i < 6; i++)
      await t.call({
        method: "POST",
        url: `/api/v1/apps/${app}/submissions`,
        token,
        body: { payload: { title: `t${i}` } },
      });
    await t.app.transparency.flush();
    await t.app.transparency.stop(); // as `audit verify` runs: nothing integrates meanwhile
    const { rows } = await t.db.query<{ event_id: string }>(
      "SELECT event_id FROM trellis.audit_events ORDER BY seq",
    );
    ids = rows.map((r) => r.event_id);
    expect((await verifyLog(t.db)).ok).toBe(true);
  });
  afterEach(() => t?.close());
  /** verifyLog as this mode runs it. */
  const verifyLog = (db: Queryable, opts: VerifyOptions = {}) =>
    verifyLogIn(
      db,
      mode === "workers"
        ? { ...opts, workers: { url: t.url as string, count: 2, minLeaves: 0 } }
        : opts,
    );

  /** Runs SQL as a malicious owner: the append-only triggers switched off for the change. */
  const tamper = (table: string, fn: (q: Queryable) => Promise<unknown>) =>
    tamperAsOwner(t.db, table, fn);

  it("a modified event", async () => {
    const victim = ids[3] as string;
    await tamper("audit_events", (q) =>
      q.query("UPDATE trellis.audit_events SET actor_id = 'mallory' WHERE event_id = $1", [victim]),
    );
    const r = await verifyLog(t.db);
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: "event_changed", event_id: victim, leaf_index: 3 });
  });

  it("a deleted event", async () => {
    await tamper("audit_events", (q) =>
      q.query("DELETE FROM trellis.audit_events WHERE event_id = $1", [ids[2]]),
    );
    expect((await verifyLog(t.db)).problem).toMatchObject({ kind: "event_missing", leaf_index: 2 });
  });

  it("two events reordered (their contents swapped)", async () => {
    await tamper("audit_events", async (q) => {
      const { rows } = await q.query<{ seq: number; event_id: string; action: string }>(
        "SELECT seq, event_id, action FROM trellis.audit_events WHERE event_id = ANY($1) ORDER BY seq",
        [[ids[1], ids[4]]],
      );
      const [a, b] = rows as unknown as [
        { seq: number; event_id: string },
        { seq: number; event_id: string },
      ];
      await q.query("UPDATE trellis.audit_events SET event_id = 'tmp' WHERE seq = $1", [a.seq]);
      await q.query("UPDATE trellis.audit_events SET event_id = $1 WHERE seq = $2", [
        a.event_id,
        b.seq,
      ]);
      await q.query("UPDATE trellis.audit_events SET event_id = $1 WHERE seq = $2", [
        b.event_id,
        a.seq,
      ]);
    });
    const r = await verifyLog(t.db);
    expect(r.problem).toMatchObject({ kind: "event_changed", leaf_index: 1 });
  });

  it("an inserted event", async () => {
    await t.db.query(
      `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
         resource_type, outcome, request_id)
       VALUES ('evt_forged', now(), 'mallory', 'admin', 'app.create', 'app', 'allowed', 'req_forged')`,
    );
    expect((await verifyLog(t.db)).problem).toMatchObject({
      kind: "not_in_log",
      event_id: "evt_forged",
    });
  });

  it("a changed leaf hash in the stored tree", async () => {
    await tamper("audit_leaves", (q) =>
      q.query("UPDATE trellis.audit_leaves SET hash = $1 WHERE leaf_index = 4", [randomBytes(32)]),
    );
    expect((await verifyLog(t.db)).problem).toMatchObject({ kind: "event_changed", leaf_index: 4 });
  });

  it("a changed node of the stored tree, low or high: what proofs and roots are served from", async () => {
    await fillAuditLog(t, 40); // nodes from level 4 up: two of 16 leaves, one of 32
    const { rows } = await t.db.query<{ level: number; idx: number }>(
      "SELECT level, idx::int AS idx FROM trellis.audit_tree ORDER BY level DESC, idx LIMIT 1",
    );
    const top = rows[0] as { level: number; idx: number };
    expect(top.level).toBeGreaterThanOrEqual(5);
    for (const [level, idx] of [
      [4, 1],
      [top.level, top.idx],
    ] as const) {
      const { rows: was } = await t.db.query<{ hash: Uint8Array }>(
        "SELECT hash FROM trellis.audit_tree WHERE level = $1 AND idx = $2",
        [level, idx],
      );
      const set = (h: Uint8Array) =>
        tamper("audit_tree", (q) =>
          q.query("UPDATE trellis.audit_tree SET hash = $3 WHERE level = $1 AND idx = $2", [
            level,
            idx,
            h,
          ]),
        );
      await set(randomBytes(32));
      const r = await verifyLog(t.db);
      expect(r.ok).toBe(false);
      expect(r.problem).toMatchObject({ kind: "node_changed" });
      expect(r.problem?.message).toContain(`node ${level}/${idx} `);
      await set(was[0]?.hash as Uint8Array);
      expect((await verifyLog(t.db)).ok).toBe(true);
    }
    // A node deleted is named as missing.
    await tamper("audit_tree", (q) =>
      q.query("DELETE FROM trellis.audit_tree WHERE level = 4 AND idx = 0"),
    );
    expect((await verifyLog(t.db)).problem?.message).toMatch(/node 4\/0 .*is missing/);
  });

  it("a changed root column of a checkpoint (the server checks new checkpoints against it)", async () => {
    await tamper("audit_checkpoints", (q) =>
      q.query(
        "UPDATE trellis.audit_checkpoints SET root = $1 WHERE tree_size = (SELECT min(tree_size) FROM trellis.audit_checkpoints)",
        [randomBytes(32)],
      ),
    );
    const r = await verifyLog(t.db);
    expect(r.problem).toMatchObject({ kind: "checkpoint_root" });
    expect(r.problem?.message).toMatch(/stored root differs/);
  });

  it("a replaced key with re-signed checkpoints: only the anchors (outside the database) tell", async () => {
    const anchors = readAnchors(t.config.auditAnchorDir);
    expect(anchors.length).toBeGreaterThan(0);
    expect(await verifyLog(t.db, { anchors })).toMatchObject({ ok: true, anchors: anchors.length });
    // The owner swaps in a key of its own and re-signs every checkpoint with it.
    const own = newNoteSigner(t.app.transparency.signer.origin);
    await tamper("audit_log_keys", (q) =>
      q.query("UPDATE trellis.audit_log_keys SET public_key = $1", [Buffer.from(own.publicKey)]),
    );
    await tamper("audit_checkpoints", async (q) => {
      const { rows } = await q.query<{ tree_size: number; root: Uint8Array }>(
        "SELECT tree_size, root FROM trellis.audit_checkpoints",
      );
      for (const r of rows)
        await q.query("UPDATE trellis.audit_checkpoints SET note = $2 WHERE tree_size = $1", [
          r.tree_size,
          own.signCheckpoint(Number(r.tree_size), new Uint8Array(r.root)),
        ]);
    });
    expect((await verifyLog(t.db)).ok).toBe(true); // the database agrees with itself
    const withKey = await verifyLog(t.db, { verifierKey: t.app.transparency.signer.verifierKey });
    expect(withKey.problem).toMatchObject({ kind: "checkpoint_signature" });
    const r = await verifyLog(t.db, { anchors });
    expect(r.problem).toMatchObject({ kind: "anchor_mismatch" });
    expect(r.problem?.message).toMatch(/re-signed with another key/);
    // An anchor beyond the tree: the database was put back behind what was published.
    const beyond = [{ size: 10_000, note: "x", file: "checkpoint-0000000000010000" }];
    expect((await verifyLog(t.db, { anchors: beyond })).problem?.message).toMatch(/older backup/);
  });

  it("a forked checkpoint (another root signed for a size)", async () => {
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT max(tree_size)::int AS n FROM trellis.audit_checkpoints",
    );
    const size = rows[0]?.n as number;
    // A size with no checkpoint yet, signed with the log's own key over a root that is not the tree's.
    let fork = size - 1;
    while (
      (await t.db.query("SELECT 1 FROM trellis.audit_checkpoints WHERE tree_size = $1", [fork]))
        .rows.length > 0
    )
      fork -= 1;
    const note = t.app.transparency.signer.signCheckpoint(fork, randomBytes(32));
    await t.db.query(
      "INSERT INTO trellis.audit_checkpoints (tree_size, root, note, created_at) VALUES ($1, $2, $3, now())",
      [fork, randomBytes(32), note],
    );
    const forked = await verifyLog(t.db);
    expect(forked.problem).toMatchObject({ kind: "checkpoint_root" });
    expect(forked.events).toBe(fork); // the leaves it walked, up to the forked size
    // Without the fork, a checkpoint whose signature no longer verifies is named too.
    await tamper("audit_checkpoints", async (q) => {
      await q.query("DELETE FROM trellis.audit_checkpoints WHERE tree_size = $1", [fork]);
      await q.query(
        "UPDATE trellis.audit_checkpoints SET note = replace(note, $2, $3) WHERE tree_size = $1",
        [size, `\n${size}\n`, `\n${size}\n\n`],
      );
    });
    expect((await verifyLog(t.db)).problem).toMatchObject({ kind: "checkpoint_signature" });
  });

  // Found by a review with the owner role (triggers off), each passed verify before its fix.
  it("an actor replaced by the event's own commitment without an erasure (erased_by left empty)", async () => {
    const { rows } = await t.db.query<{
      seq: number;
      event_id: string;
      actor_id: string;
      diff: Record<string, unknown> | null;
      key: Uint8Array;
    }>(
      `SELECT e.seq, e.event_id, e.actor_id, e.diff, k.key FROM trellis.audit_events e
         JOIN trellis.audit_subject_keys k ON k.subject = e.actor_id
        WHERE e.actor_id = 'ana' ORDER BY e.seq DESC LIMIT 1`,
    );
    const v = rows[0] as NonNullable<(typeof rows)[0]>;
    const c = personalCommitment(
      eventSalt(new Uint8Array(v.key), v.event_id),
      v.actor_id,
      v.diff?.personal ?? null,
    );
    await tamper("audit_events", (q) =>
      q.query(
        `UPDATE trellis.audit_events SET actor_id = 'mallory', diff = diff - 'personal',
            erased_commitment = $2, erased_by = NULL WHERE seq = $1`,
        [v.seq, Buffer.from(c)],
      ),
    );
    expect((await verifyLog(t.db)).problem).toMatchObject({
      kind: "erasure_unlogged",
      event_id: v.event_id,
    });
  });

  it("a stored node planted past the tree (the sequencer would stop at it)", async () => {
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT tree_size::int AS n FROM trellis.audit_log_state",
    );
    const next = Math.floor((rows[0]?.n as number) / 16); // level 4: not complete yet
    await t.db.query("INSERT INTO trellis.audit_tree (level, idx, hash) VALUES (4, $1, $2)", [
      next,
      randomBytes(32),
    ]);
    const r = await verifyLog(t.db);
    expect(r.problem).toMatchObject({ kind: "node_changed" });
    expect(r.problem?.message).toContain(`node 4/${next},`);
  });

  it("a node planted below the stored levels (its CHECK dropped first): unused, still named", async () => {
    await expect(
      t.db.query("INSERT INTO trellis.audit_tree (level, idx, hash) VALUES (1, 0, $1)", [
        randomBytes(32),
      ]),
    ).rejects.toThrow(/audit_tree_stored_levels/);
    await t.db.query("ALTER TABLE trellis.audit_tree DROP CONSTRAINT audit_tree_stored_levels");
    await t.db.query("INSERT INTO trellis.audit_tree (level, idx, hash) VALUES (1, 0, $1)", [
      randomBytes(32),
    ]);
    const r = await verifyLog(t.db);
    expect(r.problem).toMatchObject({ kind: "node_changed" });
    expect(r.problem?.message).toContain("node 1/0, below the levels it keeps");
  });

  it("a tree size raised by hand fails at once instead of walking empty pages", async () => {
    await tamper("audit_log_state", (q) =>
      q.query("UPDATE trellis.audit_log_state SET tree_size = 1000000000000"),
    );
    const started = Date.now();
    const r = await verifyLog(t.db);
    expect(r.problem).toMatchObject({ kind: "leaf_missing" });
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("bytes moved from one stored node to its neighbour (same digest of the concatenation)", async () => {
    await t.db.query(`DO $$ DECLARE c record; BEGIN
      FOR c IN SELECT conname FROM pg_constraint
                WHERE conrelid = 'trellis.audit_tree'::regclass AND contype = 'c' LOOP
        EXECUTE format('ALTER TABLE trellis.audit_tree DROP CONSTRAINT %I', c.conname);
      END LOOP; END $$`);
    await fillAuditLog(t, 40);
    const { rows } = await t.db.query<{ hash: Uint8Array }>(
      "SELECT hash FROM trellis.audit_tree WHERE level = 4 AND idx IN (0, 1) ORDER BY idx",
    );
    const a = Buffer.from(rows[0]?.hash as Uint8Array);
    const b = Buffer.from(rows[1]?.hash as Uint8Array);
    await tamper("audit_tree", async (q) => {
      await q.query("UPDATE trellis.audit_tree SET hash = $1 WHERE level = 4 AND idx = 0", [
        Buffer.concat([a, b.subarray(0, 1)]),
      ]);
      await q.query("UPDATE trellis.audit_tree SET hash = $1 WHERE level = 4 AND idx = 1", [
        b.subarray(1),
      ]);
    });
    const r = await verifyLog(t.db);
    expect(r.problem).toMatchObject({ kind: "node_changed" });
    expect(r.problem?.message).toContain("node 4/0 ");
  });
});

describe.each(DATASTORES)("retention over a tampered log on %s", (kind) => {
  it("refuses to prune rows backdated in SQL (its signature would take the evidence away)", async () => {
    const t = await startTestApp(kind, { TRELLIS_AUDIT_RETENTION_DAYS: "30" });
    try {
      for (let i = 0; i < 4; i++) await t.call({ method: "GET", url: "/admin/v1/templates" });
      await t.app.transparency.flush();
      await t.app.transparency.stop();
      await tamperAsOwner(t.db, "audit_events", (q) =>
        q.query("UPDATE trellis.audit_events SET occurred_at = '2000-01-01T00:00:00Z'"),
      );
      const { rows: before } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.audit_events",
      );
      await expect(t.app.transparency.prune()).rejects.toThrow(/Retention refused to prune/);
      const { rows: after } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.audit_events",
      );
      expect(after[0]?.n).toBe(before[0]?.n); // nothing deleted, no prune logged
      expect(t.app.transparency.status().halted).toMatch(/Retention refused/);
      expect((await verifyLog(t.db)).problem).toMatchObject({ kind: "event_changed" });
    } finally {
      await t.close();
    }
  });
});

describe.each(DATASTORES)("audit verify from a log export on %s", (kind) => {
  it("an intact export verifies with the key; a changed event or a bare prune claim does not", async () => {
    const t = await startTestApp(kind);
    const dir = mkdtempSync(join(tmpdir(), "trellis-logexport-"));
    try {
      for (let i = 0; i < 5; i++) await t.call({ method: "GET", url: "/admin/v1/templates" });
      await t.app.transparency.flush();
      await t.app.transparency.stop();
      const { file, body } = await exportLogFile(t, dir);
      const key = t.app.transparency.signer.verifierKey;
      const ok = await verifyLogFile(file, key);
      expect(ok).toMatchObject({ ok: true, pruned: 0 });
      expect(ok.events).toBe(ok.tree_size);
      expect(ok.checkpoints).toBeGreaterThan(0);
      // Another key: nothing verifies.
      const other = await verifyLogFile(file, key.replace(/\+[0-9a-f]{8}\+/, "+00000000+"));
      expect(other.ok).toBe(false);
      // One event changed in the file.
      const lines = body.trimEnd().split("\n");
      const changed = [...lines];
      changed[2] = (changed[2] as string).replace(
        '"action":"template.list"',
        '"action":"template.get"',
      );
      expect(changed[2]).not.toBe(lines[2]);
      writeFileSync(file, `${changed.join("\n")}\n`);
      expect((await verifyLogFile(file, key)).problem).toMatchObject({
        kind: "event_changed",
        leaf_index: 1,
      });
      // Events dropped and declared "pruned" in the header, without a prune in the log.
      const header = JSON.parse(lines[0] as string);
      const forged = [
        JSON.stringify({ ...header, pruned_below: 2 }),
        ...lines.slice(1).map((l, i) => (i < 2 ? l.replace(/"event":.*}$/, '"event":null}') : l)),
      ];
      writeFileSync(file, `${forged.join("\n")}\n`);
      expect((await verifyLogFile(file, key)).problem?.kind).toBe("event_missing");
      // A header whose numbers are not numbers (NaN compares false with everything, so every
      // leaf would have counted as pruned) is refused outright.
      for (const bad of [{ pruned_below: "x" }, { tree_size: "x" }, { pruned_below: -1 }]) {
        const all = [
          JSON.stringify({ ...header, ...bad }),
          ...lines.slice(1).map((l) => l.replace(/"event":.*}$/, '"event":null}')),
        ];
        writeFileSync(file, `${all.join("\n")}\n`);
        await expect(verifyLogFile(file, key)).rejects.toThrow(/not a whole number/);
      }
      // Two leaves swapped, or one repeated: named as such.
      const swapped = [lines[0], lines[1], lines[3], lines[2], ...lines.slice(4)];
      writeFileSync(file, `${swapped.join("\n")}\n`);
      expect((await verifyLogFile(file, key)).problem).toMatchObject({
        kind: "leaf_missing",
        leaf_index: 1,
        message: expect.stringContaining("out of order"),
      });
      const repeated = [lines[0], lines[1], lines[2], lines[2], ...lines.slice(3)];
      writeFileSync(file, `${repeated.join("\n")}\n`);
      expect((await verifyLogFile(file, key)).problem).toMatchObject({
        kind: "leaf_missing",
        leaf_index: 2,
        message: expect.stringContaining("leaf 1 again"),
      });
      // The export ends at its newest signed checkpoint: every leaf is under a signature.
      expect(header.checkpoints.at(-1).tree_size).toBe(header.tree_size);
      // Leaves no signature covers prove nothing: the last leaf rewritten (its hash recomputed,
      // so the file is self-consistent) and the checkpoint that covered it dropped ...
      const last = JSON.parse(lines.at(-1) as string);
      const event = { ...last.event, action: "app.delete" };
      const rewritten = {
        ...last,
        event,
        leaf_hash: Buffer.from(leafHash(new TextEncoder().encode(canonicalJson(event)))).toString(
          "base64",
        ),
      };
      const dropLast = [
        JSON.stringify({ ...header, checkpoints: header.checkpoints.slice(0, -1) }),
        ...lines.slice(1, -1),
        JSON.stringify(rewritten),
      ];
      writeFileSync(file, `${dropLast.join("\n")}\n`);
      const tail = await verifyLogFile(file, key);
      expect(tail).toMatchObject({ ok: false, problem: { kind: "unsigned" } });
      // (with the checkpoint kept, the rewritten leaf is caught by its root)
      writeFileSync(file, `${[lines[0], ...dropLast.slice(1)].join("\n")}\n`);
      expect((await verifyLogFile(file, key)).ok).toBe(false);
      // ... or every checkpoint removed.
      writeFileSync(
        file,
        `${[JSON.stringify({ ...header, checkpoints: [] }), ...dropLast.slice(1)].join("\n")}\n`,
      );
      expect((await verifyLogFile(file, key)).problem).toMatchObject({
        kind: "unsigned",
        leaf_index: 0,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await t.close();
    }
  });
});

describe("the stored nodes a page of leaves completes", () => {
  it("are exactly the (level ≥ 4, idx) with (idx + 1)·2^level − 1 in the page, for any page", () => {
    expect(STORED_FROM_LEVEL).toBe(4);
    for (let k = 0; k < 300; k++) {
      const from = Math.floor(Math.random() * 5000);
      const to = from + 1 + Math.floor(Math.random() * 3000);
      const want = new Set<string>();
      for (let n = from; n < to; n++)
        for (let level = 1, w = 2; (n + 1) % w === 0; level++, w *= 2)
          if (level >= STORED_FROM_LEVEL) want.add(`${level}/${(n + 1) / w - 1}`);
      const got = new Set<string>();
      for (const [level, lo, hi] of nodesCompletedIn(from, to))
        for (let i = lo; i <= hi; i++) got.add(`${level}/${i}`);
      expect(got).toEqual(want);
    }
  });
});
