import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auditFor,
  createApp,
  DATASTORES,
  describeOnPostgres,
  issueToken,
  jwtPart,
  startSecondServer,
  startTestApp,
  type TestApp,
} from "./harness";

const kidOf = (token: string) => jwtPart(token, "header").kid as string;

describe.each(DATASTORES)("signing key rotation on %s", (kind) => {
  let t: TestApp;
  let appId: string;
  const jwksKids = async () =>
    (
      (await t.call({ method: "GET", url: "/.well-known/jwks.json", token: null })).body.keys as {
        kid: string;
      }[]
    ).map((k) => k.kid);
  const read = (token: string) =>
    t.call({ method: "GET", url: `/api/v1/apps/${appId}/submissions`, token });

  beforeAll(async () => {
    t = await startTestApp(kind);
    appId = await createApp(t);
  });
  afterAll(() => t?.close());

  it("a new key signs from now on; tokens of the old key keep verifying; both are published", async () => {
    const before = await issueToken(t, appId, "ola", ["read"]);
    const oldKid = kidOf(before);
    const res = await t.call({ method: "POST", url: "/admin/v1/keys/rotate" });
    expect(res.status).toBe(201);
    expect(res.body.kid).toMatch(/^key_/);
    expect(res.body.kid).not.toBe(oldKid);
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "key.rotate",
      resource_id: res.body.kid,
      outcome: "allowed",
    });
    const after = await issueToken(t, appId, "nia", ["read"]);
    expect(kidOf(after)).toBe(res.body.kid);
    expect((await read(before)).status).toBe(200);
    expect((await read(after)).status).toBe(200);
    expect(await jwksKids()).toEqual(expect.arrayContaining([oldKid, res.body.kid]));
    const sealed = await t.db.query<{ private_jwk_sealed: string }>(
      "SELECT private_jwk_sealed FROM trellis.signing_keys",
    );
    for (const r of sealed.rows) expect(r.private_jwk_sealed).not.toContain('"d"');
  });

  it("retires a replaced key once every token it signed has expired, and unpublishes it", async () => {
    const firstKids = await jwksKids();
    expect(firstKids.length).toBeGreaterThanOrEqual(2);
    const oldToken = await issueToken(t, appId, "late", ["read"], 60);
    t.clock.advance(t.config.tokenMaxTtl + 120);
    const res = await t.call({ method: "POST", url: "/admin/v1/keys/rotate" });
    expect(res.status).toBe(201);
    const kids = await jwksKids();
    expect(kids).toContain(res.body.kid);
    // Only keys replaced more than the longest token lifetime ago are gone: the one that was
    // newest until this rotation still verifies its (unexpired) tokens.
    expect(kids).not.toContain(firstKids[0]);
    expect(kids).toHaveLength(2);
    expect((await read(oldToken)).status).toBe(401);
    const retired = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.signing_keys WHERE retired_at IS NOT NULL",
    );
    expect(retired.rows[0]?.n).toBeGreaterThanOrEqual(1);
  });

  it("refuses an unauthenticated rotation and audits it", async () => {
    const res = await t.call({ method: "POST", url: "/admin/v1/keys/rotate", token: null });
    expect(res.status).toBe(401);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "key.rotate",
      outcome: "denied",
    });
  });
});

describeOnPostgres("key rotation across servers sharing one PostgreSQL", () => {
  it("the other server signs with the new key within one second (LISTEN/NOTIFY)", async () => {
    const a = await startTestApp("postgres");
    const second = await startSecondServer(a);
    const b = second.app;
    try {
      const appId = await createApp(a);
      const rotated = (await a.call({ method: "POST", url: "/admin/v1/keys/rotate" })).body
        .kid as string;
      const issueOnB = async () =>
        JSON.parse(
          (
            await b.inject({
              method: "POST",
              url: `/admin/v1/apps/${appId}/tokens`,
              headers: {
                authorization: `Bearer ${a.config.adminToken}`,
                "content-type": "application/json",
              },
              payload: JSON.stringify({ subject: "s", scopes: ["read"] }),
            })
          ).body,
        ).token as string;
      const started = Date.now();
      let kid = "";
      while (Date.now() - started < 1000) {
        kid = kidOf(await issueOnB());
        if (kid === rotated) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(kid).toBe(rotated);
    } finally {
      await second.close();
      await a.close();
    }
  });
});

describe.each(DATASTORES)("signing keys without notifications on %s", (kind) => {
  it("a server that missed the rotation NOTIFY switches to the new key at its next reload", async () => {
    const { loadSigningKeys } = await import("../src/modules/tokens/keys");
    const t = await startTestApp(kind);
    try {
      const base = {
        masterKey: t.config.masterKey as Buffer,
        clock: t.clock,
        audit: { record: async () => "evt_test" },
        maxTtl: t.config.tokenMaxTtl,
      };
      const deaf = { ...t.db, listen: async () => async () => {} }; // hears no NOTIFY
      const a = await loadSigningKeys({ ...base, db: t.db });
      const b = await loadSigningKeys({ ...base, db: deaf, reloadMs: 100 });
      try {
        const ctx = {
          requestId: "req_k",
          actorId: "admin:test",
          actorRole: "admin" as const,
          appId: null,
          tokenId: null,
        };
        const { kid } = await a.rotate(ctx);
        expect(b.current().kid).not.toBe(kid);
        const started = Date.now();
        while (b.current().kid !== kid && Date.now() - started < 3000)
          await new Promise((r) => setTimeout(r, 50));
        expect(b.current().kid).toBe(kid);
      } finally {
        await a.stop();
        await b.stop();
      }
    } finally {
      await t.close();
    }
  });
});
