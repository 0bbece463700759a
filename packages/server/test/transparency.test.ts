import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { leafHash, verifyCheckpoint, verifyConsistency, verifyInclusion } from "@trellis/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app";
import type { Db, Queryable } from "../src/db/db";
import { transparencyService } from "../src/modules/transparency/transparency.service";
import { verifyLog } from "../src/modules/transparency/verify-log";
import {
  ADMIN_TOKEN,
  createApp,
  DATASTORES,
  describeOnPostgres,
  fillAuditLog,
  issueToken,
  startSecondServer,
  startTestApp,
  type TestApp,
  tamper,
} from "./harness";

const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));

describe.each(DATASTORES)("the verifiable audit log on %s", (kind) => {
  let t: TestApp;
  let app: string;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp(kind);
    app = await createApp(t);
    token = await issueToken(t, app, "ana", ["create", "read"]);
  });
  afterAll(() => t?.close());

  const submit = (n: number) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        t.call({
          method: "POST",
          url: `/api/v1/apps/${app}/submissions`,
          token,
          body: { payload: { title: `t${i}` } },
        }),
      ),
    );

  it("integrates committed events, signs a checkpoint the SDK verifies, and anchors it", async () => {
    await submit(5);
    await t.app.transparency.flush();
    const key = (await t.app.inject({ method: "GET", url: "/audit/key" })).body.trim();
    const res = await t.app.inject({ method: "GET", url: "/audit/checkpoint" });
    expect(res.statusCode).toBe(200);
    const cp = verifyCheckpoint(res.body, key);
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events",
    );
    expect(cp.treeSize).toBe(rows[0]?.n);
    const anchors = readdirSync(join(t.dataDir, "audit-anchors"));
    expect(anchors.length).toBeGreaterThan(0);
    expect(
      readFileSync(join(t.dataDir, "audit-anchors", anchors.sort().at(-1) as string), "utf8"),
    ).toBe(res.body);
    // Another key, or a changed note, does not verify.
    expect(() =>
      verifyCheckpoint(
        res.body.replace(/\n(\d+)\n/, (_m, n) => `\n${Number(n) + 1}\n`),
        key,
      ),
    ).toThrow();
  });

  it("every event's inclusion proof verifies with the SDK against the signed checkpoint", async () => {
    await submit(7);
    await t.app.transparency.flush();
    const key = (await t.app.inject({ method: "GET", url: "/audit/key" })).body.trim();
    const { rows } = await t.db.query<{ event_id: string }>(
      "SELECT event_id FROM trellis.audit_events ORDER BY seq",
    );
    for (const { event_id } of rows) {
      const res = await t.call({ method: "GET", url: `/admin/v1/audit/events/${event_id}/proof` });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const p = res.body;
      const cp = verifyCheckpoint(p.checkpoint, key);
      expect(cp.treeSize).toBe(p.tree_size);
      const lh = leafHash(new TextEncoder().encode(p.canonical));
      expect(Buffer.from(lh).toString("base64")).toBe(p.leaf_hash);
      expect(verifyInclusion(p.leaf_index, p.tree_size, lh, p.proof.map(bytes), cp.rootHash)).toBe(
        true,
      );
      expect(p.event.event_id).toBe(event_id);
    }
  });

  it("consistency proofs between any two sizes verify; out of range is 400, not clamped", async () => {
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT tree_size::int AS n FROM trellis.audit_log_state",
    );
    const size = rows[0]?.n as number;
    for (const [a, b] of [
      [1, size],
      [2, size],
      [3, 5],
      [size - 1, size],
      [4, 8],
    ] as Array<[number, number]>) {
      if (b > size || a < 1) continue;
      const res = await t.call({
        method: "GET",
        url: `/admin/v1/audit/consistency?from=${a}&to=${b}`,
      });
      expect(res.status).toBe(200);
      const p = res.body;
      expect(
        verifyConsistency(a, b, p.proof.map(bytes), bytes(p.from_root), bytes(p.to_root)),
      ).toBe(true);
    }
    const far = await t.call({
      method: "GET",
      url: `/admin/v1/audit/consistency?from=1&to=${size + 1_000_000}`,
    });
    expect(far.status).toBe(400);
    expect(far.body.error.code).toBe("proof_out_of_range");
    const { rows: ev } = await t.db.query<{ event_id: string }>(
      "SELECT event_id FROM trellis.audit_events ORDER BY seq LIMIT 1",
    );
    const beyond = await t.call({
      method: "GET",
      url: `/admin/v1/audit/events/${ev[0]?.event_id}/proof?size=${size + 1_000_000}`,
    });
    expect(beyond.status).toBe(400);
    expect(beyond.body.error.code).toBe("proof_out_of_range");
  });
});

/** RFC 9162 §2.1.1 MTH straight from the definition, from the leaf hashes alone. */
function referenceRoot(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  const node = new Uint8Array(65);
  node[0] = 1;
  node.set(referenceRoot(leaves.slice(0, k)), 1);
  node.set(referenceRoot(leaves.slice(k)), 33);
  return new Uint8Array(createHash("sha256").update(node).digest());
}

/** Numbers below m from a fixed seed (a linear congruential generator): the same cases each run. */
function seeded(seed: number): (m: number) => number {
  let x = seed;
  return (m) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % m;
  };
}

describe.each(DATASTORES)("proofs over a tree grown in uneven batches on %s", (kind) => {
  // The store keeps the leaves and the nodes from level 4 up; roots and proofs rebuild the
  // levels between. Sizes and indexes at random, most of them at no checkpoint and inside a
  // 16-leaf block, against roots computed from the leaf hashes by the definition.
  let t: TestApp;
  let leaves: Uint8Array[];
  let ids: string[];
  beforeAll(async () => {
    t = await startTestApp(kind);
    let n = 0;
    for (const batch of [1, 2, 5, 16, 3, 31, 7, 64, 1, 9, 33, 100, 13]) {
      await fillAuditLog(t, batch, n + 1); // one sequencer pass per batch
      n += batch;
    }
    const { rows } = await t.db.query<{ hash: Uint8Array; event_id: string }>(
      `SELECT l.hash, e.event_id FROM trellis.audit_leaves l
         JOIN trellis.audit_events e ON e.seq = l.event_seq ORDER BY l.leaf_index`,
    );
    leaves = rows.map((r) => new Uint8Array(r.hash));
    ids = rows.map((r) => r.event_id);
  });
  afterAll(() => t?.close());

  it("stores exactly the nodes of level 4 and up, and nothing below", async () => {
    const { rows } = await t.db.query<{ level: number; n: number }>(
      "SELECT level, count(*)::int AS n FROM trellis.audit_tree GROUP BY level ORDER BY level",
    );
    const want: Array<{ level: number; n: number }> = [];
    for (let level = 4; 2 ** level <= leaves.length; level++)
      want.push({ level, n: Math.floor(leaves.length / 2 ** level) });
    expect(rows.map((r) => ({ level: Number(r.level), n: r.n }))).toEqual(want);
  });

  it("inclusion proofs at random sizes verify with the SDK against the definition's root", async () => {
    expect(leaves.length).toBe(285);
    const key = (await t.app.inject({ method: "GET", url: "/audit/key" })).body.trim();
    const next = seeded(7);
    for (let k = 0; k < 60; k++) {
      const size = 1 + next(leaves.length);
      const index = next(size);
      const res = await t.call({
        method: "GET",
        url: `/admin/v1/audit/events/${ids[index]}/proof?size=${size}`,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const p = res.body;
      const root = referenceRoot(leaves.slice(0, size));
      expect(p.root_hash).toBe(Buffer.from(root).toString("base64"));
      expect(p.leaf_hash).toBe(Buffer.from(leaves[index] as Uint8Array).toString("base64"));
      const proof = p.proof.map(bytes);
      expect(verifyInclusion(index, size, leaves[index] as Uint8Array, proof, root)).toBe(true);
      if (proof.length > 0) {
        const bad = proof.map((h: Uint8Array, i: number) =>
          i === k % proof.length ? Uint8Array.from(h, (b, j) => (j === 0 ? b ^ 1 : b)) : h,
        );
        expect(verifyInclusion(index, size, leaves[index] as Uint8Array, bad, root)).toBe(false);
      }
      if (p.checkpoint) expect(verifyCheckpoint(p.checkpoint, key).treeSize).toBe(size);
    }
    // The newest checkpoint is the whole tree's: its root is the definition's.
    const cp = await t.app.inject({ method: "GET", url: "/audit/checkpoint" });
    const signed = verifyCheckpoint(cp.body, key);
    expect(signed.treeSize).toBe(leaves.length);
    expect(Buffer.from(signed.rootHash)).toEqual(Buffer.from(referenceRoot(leaves)));
  });

  it("consistency proofs between random sizes verify against the definition's roots", async () => {
    const next = seeded(11);
    for (let k = 0; k < 60; k++) {
      const to = 1 + next(leaves.length);
      const from = 1 + next(to);
      const res = await t.call({
        method: "GET",
        url: `/admin/v1/audit/consistency?from=${from}&to=${to}`,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const r1 = referenceRoot(leaves.slice(0, from));
      const r2 = referenceRoot(leaves.slice(0, to));
      expect(res.body.from_root).toBe(Buffer.from(r1).toString("base64"));
      expect(res.body.to_root).toBe(Buffer.from(r2).toString("base64"));
      expect(verifyConsistency(from, to, res.body.proof.map(bytes), r1, r2)).toBe(true);
    }
  });

  it("a missing leaf under a rebuilt node is an error naming the node, not a wrong proof", async () => {
    const res = await t.call({ method: "GET", url: `/admin/v1/audit/events/${ids[0]}/proof` });
    expect(res.status).toBe(200);
    // Leaf 0's proof takes node 1/1 (leaves 2 and 3), rebuilt: without leaf 3 there is no
    // proof, never one that skips it. (Leaf rows cannot be deleted through the trigger, so the
    // owner's tamper is the only way to lose one.)
    await tamper(t.db, "audit_leaves", (q) =>
      q.query("DELETE FROM trellis.audit_leaves WHERE leaf_index = 3"),
    );
    const after = await t.call({ method: "GET", url: `/admin/v1/audit/events/${ids[0]}/proof` });
    expect(after.status).toBe(500);
    expect(JSON.stringify(after.body)).not.toContain("audit tree lacks");
  });
});

describeOnPostgres("two servers on one PostgreSQL", () => {
  it("both write and both run sequencers; the result is one tree that verifies", async () => {
    const t = await startTestApp("postgres", { TRELLIS_AUDIT_MERGE_DELAY_MS: "20" });
    const other = await startSecondServer(t);
    try {
      const app = await createApp(t);
      const token = await issueToken(t, app, "ana", ["create", "read"]);
      const write = (server: { inject: typeof t.app.inject }, i: number) =>
        server.inject({
          method: "POST",
          url: `/api/v1/apps/${app}/submissions`,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          payload: JSON.stringify({ payload: { title: `t${i}` } }),
        });
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => write(i % 2 ? t.app : other.app, i)),
      );
      expect(results.every((r) => r.statusCode === 201)).toBe(true);
      await Promise.all([t.app.transparency.flush(), other.app.transparency.flush()]);
      // Both sequencers stopped (a pass in flight on either finishes), then the rest integrated:
      // a flush while the other server holds the lock would return before that pass commits.
      await Promise.all([t.app.transparency.stop(), other.app.transparency.stop()]);
      await t.app.transparency.flush();
      const report = await verifyLog(t.db);
      expect(report.problem).toBeUndefined();
      expect(report).toMatchObject({ ok: true });
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.audit_events",
      );
      expect(report.tree_size).toBe(rows[0]?.n);
      expect(report.checkpoints).toBeGreaterThan(0);
    } finally {
      await other.close();
      await t.close();
    }
  });
});

describe.each(DATASTORES)("sequencer passes racing each other on %s", (kind) => {
  // The race itself (a pass whose snapshot predates another pass's commit by microseconds) is
  // not reproducible on demand, so the database answers the first pass with the error
  // PostgreSQL gives then (40001); everything else is the real database.
  it("a pass that meets a serialization failure runs again; a persistent one is reported", async () => {
    const t = await startTestApp(kind, { TRELLIS_AUDIT_MERGE_DELAY_MS: "60000" });
    try {
      await t.call({ method: "GET", url: "/admin/v1/templates" });
      let failures = 1;
      const flaky = {
        ...t.db,
        transaction: <T>(fn: (tx: Queryable) => Promise<T>) => {
          if (failures-- > 0)
            return Promise.reject(
              Object.assign(new Error("could not serialize access"), { code: "40001" }),
            );
          return t.db.transaction(fn);
        },
      } as Db;
      const seq = transparencyService({
        db: flaky,
        clock: t.clock,
        signer: t.app.transparency.signer,
        mergeDelayMs: 60_000,
        anchorDir: join(t.dataDir, "anchors-race"),
      });
      const cp = await seq.tick();
      expect(cp?.treeSize).toBeGreaterThan(0);
      failures = 10;
      await t.call({ method: "GET", url: "/admin/v1/templates" });
      await expect(seq.tick()).rejects.toMatchObject({ code: "40001" });
      expect(failures).toBe(7); // three attempts, then the error
    } finally {
      await t.close();
    }
  });
});

describeOnPostgres("events committed late, and rolled back", () => {
  it("a transaction that commits after later events still gets its leaf; a rolled-back seq is let go", async () => {
    const t = await startTestApp("postgres");
    const pg = (await import("pg")).default;
    const held = new pg.Client(t.url);
    const gone = new pg.Client(t.url);
    await held.connect();
    await gone.connect();
    const insert = (c: InstanceType<typeof pg.Client>, id: string) =>
      c.query(
        `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_role, action, resource_type, outcome, request_id)
         VALUES ($1, now(), 'admin', 'app.get', 'app', 'allowed', $1)`,
        [id],
      );
    try {
      await t.app.transparency.flush();
      await held.query("BEGIN");
      await insert(held, "evt_late"); // draws a seq, commits only later
      await gone.query("BEGIN");
      await insert(gone, "evt_gone"); // draws a seq, never commits
      await t.call({ method: "GET", url: "/admin/v1/templates" }); // later seqs, committed
      await t.app.transparency.flush();
      const holes = async () =>
        (await t.db.query<{ holes: unknown[] }>("SELECT holes FROM trellis.audit_log_state"))
          .rows[0]?.holes ?? [];
      expect((await holes()).length).toBe(2);
      await held.query("COMMIT");
      await gone.query("ROLLBACK");
      await t.app.transparency.flush();
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.audit_leaves l JOIN trellis.audit_events e ON e.seq = l.event_seq WHERE e.event_id = 'evt_late'",
      );
      expect(rows[0]?.n).toBe(1);
      expect((await holes()).length).toBe(1); // the rolled-back one, until it settles
      t.clock.advance(2); // past the settle time: tied to a snapshot …
      await t.app.transparency.tick();
      // … and let go once every transaction below its xmax has ended. xids are cluster-wide, so
      // other databases' transactions on a busy server can delay that a little: poll.
      for (let i = 0; i < 100 && (await holes()).length > 0; i++) {
        await t.call({ method: "GET", url: "/admin/v1/templates" });
        await t.app.transparency.flush();
        await t.app.transparency.tick();
        await new Promise((r) => setTimeout(r, 30));
      }
      expect(await holes()).toEqual([]);
      expect((await verifyLog(t.db)).ok).toBe(true);
    } finally {
      await held.end();
      await gone.end();
      await t.close();
    }
  });
});

describe.each(DATASTORES)("after a restore on %s", (kind) => {
  it("a log behind its published checkpoint refuses to sign and says how to recover", async () => {
    const t = await startTestApp(kind);
    try {
      await t.call({ method: "GET", url: "/admin/v1/templates" });
      await t.app.transparency.flush();
      await t.app.transparency.stop(); // only the restarted server sequences from here
      const cp = await t.app.transparency.latestCheckpoint();
      expect(cp).toBeDefined();
      // An anchor published beyond what this database holds, as after restoring an older backup.
      const { mkdirSync, writeFileSync } = await import("node:fs");
      const { join } = await import("node:path");
      const dir = t.config.auditAnchorDir;
      mkdirSync(dir, { recursive: true });
      const ahead = (cp?.treeSize ?? 0) + 100;
      writeFileSync(
        join(dir, `checkpoint-${String(ahead).padStart(16, "0")}`),
        t.app.transparency.signer.signCheckpoint(ahead, new Uint8Array(32).fill(9)),
      );
      const restarted = await buildApp({ config: t.config, db: t.db, clock: t.clock });
      try {
        expect(restarted.transparency.status().halted).toMatch(
          /behind its published checkpoint .*Restore a backup taken after that checkpoint/,
        );
        await restarted.inject({
          method: "GET",
          url: "/admin/v1/templates",
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        expect(await restarted.transparency.tick()).toBeUndefined(); // nothing is signed
        const still = await restarted.transparency.latestCheckpoint();
        expect(still?.treeSize).toBe(cp?.treeSize);
        // Reads and proofs keep working.
        expect(
          (await restarted.inject({ method: "GET", url: "/audit/checkpoint" })).statusCode,
        ).toBe(200);
      } finally {
        await restarted.close();
      }
    } finally {
      await t.close();
    }
  });
});
