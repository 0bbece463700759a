import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../src/lib/clock";
import { auditService } from "../src/modules/audit/audit.service";
import { createApp, DATASTORES, freshDb, issueToken, startTestApp, type TestApp } from "./harness";

describe.each(DATASTORES)("audit group commit on %s", (kind) => {
  let t: TestApp;
  let appId: string;
  let token: string;
  const url = () => `/api/v1/apps/${appId}/submissions`;
  beforeAll(async () => {
    t = await startTestApp(kind);
    appId = await createApp(t);
    token = await issueToken(t, appId, "reader", ["create", "read"]);
    expect(
      (await t.call({ method: "POST", url: url(), token, body: { payload: { title: "x" } } }))
        .status,
    ).toBe(201);
  });
  afterAll(() => t?.close());

  it("concurrent reads each get exactly one committed event before their response", async () => {
    const responses = await Promise.all(
      Array.from({ length: 40 }, () => t.call({ method: "GET", url: url(), token })),
    );
    expect(responses.every((r) => r.status === 200 && r.body.items.length === 1)).toBe(true);
    const ids = responses.map((r) => r.headers["x-request-id"] as string);
    expect(new Set(ids).size).toBe(40);
    const { rows } = await t.db.query<{
      request_id: string;
      action: string;
      outcome: string;
      actor_id: string;
    }>(
      "SELECT request_id, action, outcome, actor_id FROM trellis.audit_events WHERE request_id = ANY($1)",
      [ids],
    );
    expect(rows).toHaveLength(40);
    expect(new Set(rows.map((r) => r.request_id))).toEqual(new Set(ids));
    expect(
      rows.every(
        (r) => r.action === "submission.list" && r.outcome === "allowed" && r.actor_id === "reader",
      ),
    ).toBe(true);
  });

  it("no audit, no data: when the event cannot be written the read is answered with an error, not the rows", async () => {
    await t.db.exec(`
      CREATE FUNCTION trellis.test_refuse_reads() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.action = 'submission.list' THEN RAISE EXCEPTION 'audit store unavailable'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER test_refuse_reads BEFORE INSERT ON trellis.audit_events FOR EACH ROW EXECUTE FUNCTION trellis.test_refuse_reads();`);
    try {
      const res = await t.call({ method: "GET", url: url(), token });
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe("internal");
      expect(JSON.stringify(res.body)).not.toContain('"title"');
    } finally {
      await t.db.exec(
        "DROP TRIGGER test_refuse_reads ON trellis.audit_events; DROP FUNCTION trellis.test_refuse_reads();",
      );
    }
    expect((await t.call({ method: "GET", url: url(), token })).status).toBe(200);
  });

  it("keeps events in the order they were recorded and drains on shutdown", async () => {
    const fresh = await freshDb(kind);
    try {
      const { migrate } = await import("../src/db/migrate");
      const { CORE_MIGRATIONS } = await import("../src/app");
      await migrate(fresh.db, [{ scope: "core", dir: CORE_MIGRATIONS }]);
      const audit = auditService({ db: fresh.db, clock: systemClock });
      const ctx = {
        requestId: "req_order",
        actorId: "a",
        actorRole: "admin" as const,
        appId: null,
        tokenId: null,
      };
      const pending = Array.from({ length: 25 }, (_, i) =>
        audit.record(ctx, {
          action: "audit.list",
          resourceType: "audit_event",
          resourceId: `r${String(i).padStart(2, "0")}`,
        }),
      );
      await audit.drain();
      await Promise.all(pending);
      const { rows } = await fresh.db.query<{ resource_id: string }>(
        "SELECT resource_id FROM trellis.audit_events WHERE request_id = 'req_order' ORDER BY seq",
      );
      expect(rows.map((r) => r.resource_id)).toEqual(
        Array.from({ length: 25 }, (_, i) => `r${String(i).padStart(2, "0")}`),
      );
    } finally {
      await fresh.drop();
    }
  });
});
