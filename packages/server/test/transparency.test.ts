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
  issueToken,
  startSecondServer,
  startTestApp,
  type TestApp,
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
