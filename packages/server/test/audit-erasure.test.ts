import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  leafHash,
  personalCommitment,
  verifyCheckpoint,
  verifyInclusion,
  verifyOpening,
} from "@trellis/sdk/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLogFile } from "../src/modules/transparency/log-export";
import { verifyLog } from "../src/modules/transparency/verify-log";
import { DATASTORES, issueToken, startTestApp, type TestApp, tamper } from "./harness";

const EMAIL = "dana.personal@example.org";
const PHONE = "+31 6 5555 0101";
const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

/**
 * GDPR erasure in the audit log (issue 5, item 8): a directory entry's attribute changes are
 * the actor's personal data (`diff.personal`); erasing the subject removes them and the actor
 * from every event while every leaf, proof and checkpoint still verifies.
 */
describe.each(DATASTORES)("audit erasure on %s", (kind) => {
  let t: TestApp;
  let app: string;
  let dana: string;
  let eve: string;
  let danaUpdate: string; // the event id of dana's attribute change
  let eveUpdate: string;

  const updateEvent = async (sub: string) => {
    const { rows } = await t.db.query<{ event_id: string }>(
      "SELECT event_id FROM trellis.audit_events WHERE action = 'item.update' AND actor_id = $1 ORDER BY seq DESC LIMIT 1",
      [sub],
    );
    return rows[0]?.event_id as string;
  };
  const proof = async (eventId: string) => {
    const res = await t.call({ method: "GET", url: `/admin/v1/audit/events/${eventId}/proof` });
    expect(res.status).toBe(200);
    return res.body;
  };
  /** The proof verifies from outside: leaf hash of the bytes shown, inclusion, signed checkpoint. */
  const verifiesFromOutside = (p: {
    canonical: string;
    leaf_index: number;
    tree_size: number;
    proof: string[];
    checkpoint: string;
  }) => {
    const cp = verifyCheckpoint(p.checkpoint, t.app.transparency.signer.verifierKey);
    const leaf = leafHash(new TextEncoder().encode(p.canonical));
    return verifyInclusion(p.leaf_index, p.tree_size, leaf, p.proof.map(b64), cp.rootHash);
  };

  beforeAll(async () => {
    t = await startTestApp(kind, {
      TRELLIS_AUDIT_SINK_FILE: join(mkdtempSync(join(tmpdir(), "trellis-sink-")), "audit.ndjson"),
    });
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name: "People",
        template: "directory",
        owners: ["o@example.org"],
        payload_schema: {
          type: "object",
          required: ["name"],
          properties: {
            name: { type: "string", maxLength: 100 },
            email: { type: "string", maxLength: 100 },
            phone: { type: "string", maxLength: 40 },
          },
        },
      },
    });
    expect(res.status).toBe(201);
    app = res.body.id;
    dana = await issueToken(t, app, "dana", ["create", "read", "update"]);
    eve = await issueToken(t, app, "eve", ["create", "read", "update"]);
    for (const [token, name, email, phone] of [
      [dana, "Dana", EMAIL, PHONE],
      [eve, "Eve", "eve@example.org", "+1 555 0100"],
    ] as const) {
      const item = await t.call({
        method: "POST",
        url: `/api/v1/apps/${app}/items`,
        token,
        body: { kind: "person", attrs: { name } },
      });
      expect(item.status).toBe(201);
      const patched = await t.call({
        method: "PATCH",
        url: `/api/v1/apps/${app}/items/${item.body.id}`,
        token,
        body: { attrs: { email, phone } },
      });
      expect(patched.status).toBe(200);
    }
    await t.app.transparency.flush();
    danaUpdate = await updateEvent("dana");
    eveUpdate = await updateEvent("eve");
  });
  afterAll(() => t?.close());

  it("an attribute change is logged as the actor's personal data, behind a commitment the SDK opens", async () => {
    const { rows } = await t.db.query<{ diff: unknown }>(
      "SELECT diff FROM trellis.audit_events WHERE event_id = $1",
      [danaUpdate],
    );
    expect(rows[0]?.diff).toEqual({
      personal: { attrs: { email: { from: null, to: EMAIL }, phone: { from: null, to: PHONE } } },
    });
    const p = await proof(danaUpdate);
    // What the leaf hashes holds neither the actor nor the values: only the commitment.
    expect(p.canonical).not.toContain("dana");
    expect(p.canonical).not.toContain(EMAIL);
    expect(p.event).not.toHaveProperty("actor_id");
    expect(p.event.diff).toEqual({});
    expect(verifiesFromOutside(p)).toBe(true);
    expect(p.opening).toMatchObject({
      actor_id: "dana",
      personal: (rows[0]?.diff as { personal?: unknown } | undefined)?.personal,
    });
    expect(verifyOpening(p.event, p.opening)).toBe(true);
    // An opening naming someone else, or other data, does not open it.
    expect(verifyOpening(p.event, { ...p.opening, actor_id: "mallory" })).toBe(false);
    expect(
      verifyOpening(p.event, {
        ...p.opening,
        personal: { attrs: { email: { from: null, to: "x" } } },
      }),
    ).toBe(false);
    expect(Buffer.from(personalCommitment(p.opening)).toString("base64")).toBe(p.event.personal);
    // The sink file, a copy outside the database, has the event as hashed and nothing personal.
    await t.app.auditSinks.runOnce();
    const sink = readFileSync(t.config.auditSinkFile as string, "utf8");
    expect(sink).toContain(danaUpdate);
    expect(sink).toContain(p.event.personal);
    expect(sink).not.toContain(EMAIL);
    expect(sink).not.toContain('"dana"');
  });

  it("erasing a subject removes their personal data everywhere it can be read, and the log still verifies", async () => {
    const before = await proof(danaUpdate);
    const checkpointBefore = await t.call({ method: "GET", url: "/audit/checkpoint", token: null });

    const res = await t.call({
      method: "POST",
      url: "/admin/v1/audit/erasures",
      body: { subject: "dana" },
    });
    expect(res.status).toBe(200);
    // dana's create, update, and reads of the gateway (at least create + update).
    expect(res.body.erased).toBeGreaterThanOrEqual(2);
    expect(res.body).toMatchObject({ pending: 0, kept: 0, tokens: 1 });
    expect(res.body.subject_tag).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body.subject_tag).not.toContain("dana");

    // The database holds neither the subject nor the data in any audit row, nor their key.
    const { rows: leaks } = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM trellis.audit_events e
        WHERE e::text LIKE '%dana%' OR e::text LIKE $1 OR e::text LIKE $2`,
      [`%${EMAIL}%`, `%${PHONE}%`],
    );
    expect(leaks[0]?.n).toBe(0);
    const { rows: keys } = await t.db.query(
      "SELECT 1 FROM trellis.audit_subject_keys WHERE subject = 'dana'",
    );
    expect(keys).toHaveLength(0);
    // Nor does the audit API.
    const listed = await t.call({ method: "GET", url: "/admin/v1/audit?actor=dana" });
    expect(listed.status).toBe(200);
    expect(listed.body.items).toHaveLength(0);
    const exported = await t.call({ method: "GET", url: "/admin/v1/audit/export?format=ndjson" });
    expect(JSON.stringify(exported.body)).not.toContain(EMAIL);

    // The leaf and its proof are what they were; the proof says the event was erased.
    await t.app.transparency.flush();
    const after = await proof(danaUpdate);
    expect(after).toMatchObject({ erased: true, opening: null, leaf_index: before.leaf_index });
    expect(after.canonical).toBe(before.canonical);
    expect(after.leaf_hash).toBe(before.leaf_hash);
    expect(verifiesFromOutside(after)).toBe(true);
    // The old checkpoint is consistent with the new one (nothing in the tree moved).
    const cpOld = verifyCheckpoint(checkpointBefore.body, t.app.transparency.signer.verifierKey);
    const cons = await t.call({
      method: "GET",
      url: `/admin/v1/audit/consistency?from=${cpOld.treeSize}&to=${after.tree_size}`,
    });
    expect(cons.body.from_root).toBe(Buffer.from(cpOld.rootHash).toString("base64"));

    // Someone else's events are untouched.
    const eveProof = await proof(eveUpdate);
    expect(eveProof.opening).toMatchObject({ actor_id: "eve" });
    expect(verifyOpening(eveProof.event, eveProof.opening)).toBe(true);

    // The erasure is in the log, by the admin, naming the subject only by its keyed hash.
    const { rows: erase } = await t.db.query<{ actor_id: string; resource_id: string }>(
      "SELECT actor_id, resource_id FROM trellis.audit_events WHERE action = 'audit.erase'",
    );
    expect(erase).toEqual([{ actor_id: "admin:env", resource_id: res.body.subject_tag }]);

    // audit verify: the database, and an export file with nothing but the key.
    await t.app.transparency.flush();
    expect((await verifyLog(t.db)).problem).toBeUndefined();
    const file = await t.call({ method: "GET", url: "/admin/v1/audit/log-export" });
    const text = typeof file.body === "string" ? file.body : JSON.stringify(file.body);
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain('"dana"');
    const dir = mkdtempSync(join(tmpdir(), "trellis-erasure-"));
    try {
      writeFileSync(join(dir, "log.ndjson"), text);
      const r = await verifyLogFile(join(dir, "log.ndjson"), t.app.transparency.signer.verifierKey);
      expect(r).toMatchObject({ ok: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Their token is revoked at once and no longer names them (its id stays in the log); the
    // refusal is new activity, logged like any other (a later erasure takes it too).
    const denied = await t.call({ method: "GET", url: `/api/v1/apps/${app}/items`, token: dana });
    expect(denied.status).toBe(401);
    expect(denied.body.error.code).toBe("token_revoked");
    const { rows: named } = await t.db.query<{ subject: string }>(
      "SELECT subject FROM trellis.tokens WHERE subject LIKE '%dana%' OR subject = $1",
      [`erased:${res.body.subject_tag}`],
    );
    expect(named).toEqual([{ subject: `erased:${res.body.subject_tag}` }]);
  });

  it("the same subject acting again gets a new key; erasing again is idempotent for old events", async () => {
    const again_ = await issueToken(t, app, "dana", ["read"]); // back, with a new token
    const me = await t.call({ method: "GET", url: `/api/v1/apps/${app}/items`, token: again_ });
    expect(me.status).toBe(200);
    await t.app.transparency.flush();
    const { rows } = await t.db.query(
      "SELECT 1 FROM trellis.audit_subject_keys WHERE subject = 'dana'",
    );
    expect(rows).toHaveLength(1);
    const again = await t.call({
      method: "POST",
      url: "/admin/v1/audit/erasures",
      body: { subject: "dana" },
    });
    // The refused request at the end of the last test, the new read; the new token.
    expect(again.body).toMatchObject({ erased: 2, pending: 0, tokens: 1 });
    await t.app.transparency.flush();
    expect((await verifyLog(t.db)).problem).toBeUndefined();
  });

  it("bad requests are refused with a code and audited; a steward cannot erase", async () => {
    const bad = await t.call({ method: "POST", url: "/admin/v1/audit/erasures", body: {} });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
    const extra = await t.call({
      method: "POST",
      url: "/admin/v1/audit/erasures",
      body: { subject: "eve", also: 1 },
    });
    expect(extra.status).toBe(400);
    const steward = await t.call({
      method: "POST",
      url: "/admin/v1/admins",
      body: { name: "steward-1", roles: ["steward"] },
    });
    expect(steward.status).toBe(201);
    const denied = await t.call({
      method: "POST",
      url: "/admin/v1/audit/erasures",
      token: steward.body.token,
      body: { subject: "eve" },
    });
    expect(denied.status).toBe(403);
    const { rows } = await t.db.query<{ outcome: string }>(
      "SELECT outcome FROM trellis.audit_events WHERE action = 'audit.erase' AND outcome <> 'allowed'",
    );
    expect(rows.length).toBeGreaterThanOrEqual(2);
    // eve is still there.
    expect((await proof(eveUpdate)).opening).toMatchObject({ actor_id: "eve" });
  });

  it("the guard lets an erasure change only the personal part; verify catches an erasure done by hand", async () => {
    const { rows: seqs } = await t.db.query<{ seq: number }>(
      "SELECT seq FROM trellis.audit_events WHERE event_id = $1",
      [eveUpdate],
    );
    const seq = seqs[0]?.seq;
    // Inside an erasure, changing the action (or naming another actor) is refused for the owner.
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query("SELECT set_config('trellis.audit_erasure', '1', true)");
        await tx.query(
          `UPDATE trellis.audit_events SET actor_id = NULL, diff = diff - 'personal',
             erased_commitment = $2, erased_by = 1, action = 'item.get' WHERE seq = $1`,
          [seq, Buffer.alloc(32)],
        );
      }),
    ).rejects.toThrow(/append-only/);
    await expect(
      t.db.query("UPDATE trellis.audit_events SET actor_id = 'mallory' WHERE seq = $1", [seq]),
    ).rejects.toThrow(/append-only/);

    // A malicious owner "erases" eve with the right commitment but without a logged erasure.
    const p = await proof(eveUpdate);
    const commitment = Buffer.from(p.event.personal, "base64");
    await t.db.transaction(async (tx) => {
      await tx.query("ALTER TABLE trellis.audit_events DISABLE TRIGGER USER");
      await tx.query(
        `UPDATE trellis.audit_events SET actor_id = NULL, diff = diff - 'personal',
           erased_commitment = $2, erased_by = 1 WHERE seq = $1`,
        [seq, commitment],
      );
      await tx.query("ALTER TABLE trellis.audit_events ENABLE TRIGGER USER");
    });
    expect((await verifyLog(t.db)).problem).toMatchObject({
      kind: "erasure_unlogged",
      event_id: eveUpdate,
    });
    // verify's two indexes (migration 0015) only make it faster: an owner who drops them gets
    // the same finding.
    await t.db.query("DROP INDEX trellis.audit_events_erased, trellis.audit_events_governance");
    expect((await verifyLog(t.db)).problem).toMatchObject({
      kind: "erasure_unlogged",
      event_id: eveUpdate,
    });
  });

  it("an erasure forged with database access alone (a copied statement) is named by verify", async () => {
    // The owner copies dana's real erasure event, statement and all, lets the sequencer log it,
    // and points eve's hand-erased row at it: the statement signs dana's rows, not eve's.
    const { rows: real } = await t.db.query<{ diff: Record<string, unknown> }>(
      "SELECT diff FROM trellis.audit_events WHERE action = 'audit.erase' AND outcome = 'allowed' ORDER BY seq LIMIT 1",
    );
    expect(typeof real[0]?.diff.statement).toBe("string");
    const forged = "event_forged_erasure_0001";
    await t.db.query(
      `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
         resource_type, resource_id, policy_ids, outcome, request_id, diff)
       VALUES ($1, now(), 'admin:env', 'admin', 'audit.erase', 'audit_subject', 'x', '{}',
               'allowed', 'forged', $2::jsonb)`,
      [forged, JSON.stringify(real[0]?.diff)],
    );
    await t.app.transparency.flush();
    await tamper(t.db, "audit_events", (q) =>
      q.query(
        `UPDATE trellis.audit_events SET erased_by = (SELECT seq FROM trellis.audit_events WHERE event_id = $2)
          WHERE event_id = $1`,
        [eveUpdate, forged],
      ),
    );
    const r = await verifyLog(t.db);
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: "erasure_forged", event_id: forged });
    expect(r.problem?.message).toMatch(/not the server's own erasure/);
  });
});

describe.each(DATASTORES)("audit verify without a subject's key on %s", (kind) => {
  it("a key is deleted only by an erasure; one deleted by hand is named by verify", async () => {
    const t = await startTestApp(kind);
    try {
      for (let i = 0; i < 3; i++) await t.call({ method: "GET", url: "/admin/v1/templates" });
      await t.app.transparency.flush();
      await t.app.transparency.stop();
      expect((await verifyLog(t.db)).ok).toBe(true);
      await expect(
        t.db.query("DELETE FROM trellis.audit_subject_keys WHERE subject = 'admin:env'"),
      ).rejects.toThrow(/only by an erasure/);
      await t.db.transaction(async (tx) => {
        await tx.query("ALTER TABLE trellis.audit_subject_keys DISABLE TRIGGER USER");
        await tx.query("DELETE FROM trellis.audit_subject_keys WHERE subject = 'admin:env'");
        await tx.query("ALTER TABLE trellis.audit_subject_keys ENABLE TRIGGER USER");
      });
      const r = await verifyLog(t.db);
      expect(r.ok).toBe(false);
      expect(r.problem).toMatchObject({ kind: "event_changed", leaf_index: 0 });
      expect(r.problem?.message).toMatch(
        /with no audit key: its actor was changed, or their key deleted/,
      );
      // An erasure then refuses to build on it, and changes nothing.
      const res = await t.call({
        method: "POST",
        url: "/admin/v1/audit/erasures",
        body: { subject: "admin:env" },
      });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe("audit_log_inconsistent");
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.audit_events WHERE erased_by IS NOT NULL",
      );
      expect(rows[0]?.n).toBe(0);
    } finally {
      await t.close();
    }
  });
});
