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

describe.each(DATASTORES)("token revocation on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  const list = (app: string, token: string) =>
    t.call({ method: "GET", url: `/api/v1/apps/${app}/submissions`, token });
  const tokenId = (token: string) => jwtPart(token, "payload").jti as string;

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createApp(t, "A");
    appB = await createApp(t, "B");
  });
  afterAll(() => t?.close());

  it("a revoked token is refused on the next request, audited; other tokens keep working", async () => {
    const doomed = await issueToken(t, appA, "dora", ["read"]);
    const other = await issueToken(t, appA, "otto", ["read"]);
    expect((await list(appA, doomed)).status).toBe(200); // cached as verified
    const res = await t.call({
      method: "DELETE",
      url: `/admin/v1/apps/${appA}/tokens/${tokenId(doomed)}`,
    });
    expect(res.status).toBe(204);
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "token.revoke",
      resource_id: tokenId(doomed),
      outcome: "allowed",
    });
    const refused = await list(appA, doomed);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe("token_revoked");
    expect((await auditFor(t.db, refused.body.error.request_id))[0]).toMatchObject({
      outcome: "denied",
      error_code: "token_revoked",
      actor_id: "dora",
      token_id: tokenId(doomed),
    });
    expect((await list(appA, other)).status).toBe(200);
    // Idempotent; unknown ids and another app's ids are not found.
    expect(
      (await t.call({ method: "DELETE", url: `/admin/v1/apps/${appA}/tokens/${tokenId(doomed)}` }))
        .status,
    ).toBe(204);
    const foreign = await issueToken(t, appB, "bea", ["read"]);
    const cross = await t.call({
      method: "DELETE",
      url: `/admin/v1/apps/${appA}/tokens/${tokenId(foreign)}`,
    });
    expect(cross.status).toBe(404);
    expect(cross.body.error.code).toBe("not_found");
    expect((await list(appB, foreign)).status).toBe(200);
    const bad = await t.call({
      method: "DELETE",
      url: `/admin/v1/apps/${appA}/tokens/not-a-token-id`,
    });
    expect(bad.status).toBe(400);
  });

  it("revoking every token of an app refuses all earlier ones; a token issued afterwards works", async () => {
    const a1 = await issueToken(t, appA, "ann", ["read"]);
    const a2 = await issueToken(t, appA, "abe", ["read"]);
    const b1 = await issueToken(t, appB, "bob", ["read"]);
    const res = await t.call({ method: "DELETE", url: `/admin/v1/apps/${appA}/tokens` });
    expect(res.status).toBe(204);
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "token.revoke_all",
      resource_id: appA,
    });
    for (const tok of [a1, a2])
      expect((await list(appA, tok)).body.error.code).toBe("token_revoked");
    expect((await list(appB, b1)).status).toBe(200);
    t.clock.advance(1); // iat has one-second resolution: the same second counts as before
    const fresh = await issueToken(t, appA, "ann", ["read"]);
    expect((await list(appA, fresh)).status).toBe(200);
  });

  it("lists an app's tokens with their status, never the token itself", async () => {
    const live = await issueToken(t, appA, "lena", ["read", "create"]);
    const short = await issueToken(t, appA, "sam", ["read"], 60);
    t.clock.advance(61);
    const res = await t.call({ method: "GET", url: `/admin/v1/apps/${appA}/tokens` });
    expect(res.status).toBe(200);
    const byId = new Map(res.body.items.map((i: { token_id: string }) => [i.token_id, i]));
    expect(byId.get(tokenId(live))).toMatchObject({
      subject: "lena",
      scopes: ["create", "read"],
      status: "active",
      revoked_at: null,
    });
    expect(byId.get(tokenId(short))).toMatchObject({ status: "expired" });
    expect(res.body.items.some((i: { status: string }) => i.status === "revoked")).toBe(true);
    const text = JSON.stringify(res.body);
    for (const secret of [live, short]) expect(text).not.toContain(secret.split(".")[2]);
    expect(res.body.items.every((i: { token_id: string }) => i.token_id.startsWith("tok_"))).toBe(
      true,
    );
    const unknown = await t.call({
      method: "GET",
      url: "/admin/v1/apps/app_0000000000000000000000000z/tokens",
    });
    expect(unknown.status).toBe(404);
    const anon = await t.call({
      method: "DELETE",
      url: `/admin/v1/apps/${appA}/tokens`,
      token: null,
    });
    expect(anon.status).toBe(401);
    expect((await auditFor(t.db, anon.body.error.request_id))[0]).toMatchObject({
      action: "token.revoke_all",
      outcome: "denied",
    });
  });
});

describeOnPostgres("revocation across servers sharing one PostgreSQL", () => {
  it("reaches the other server within one second (LISTEN/NOTIFY)", async () => {
    const a = await startTestApp("postgres");
    const second = await startSecondServer(a);
    const b = second.app;
    try {
      const appId = await createApp(a);
      const token = await issueToken(a, appId, "roamer", ["read"]);
      const jti = jwtPart(token, "payload").jti;
      const onB = () =>
        b.inject({
          method: "GET",
          url: `/api/v1/apps/${appId}/submissions`,
          headers: { authorization: `Bearer ${token}` },
        });
      expect((await onB()).statusCode).toBe(200);
      expect(
        (await a.call({ method: "DELETE", url: `/admin/v1/apps/${appId}/tokens/${jti}` })).status,
      ).toBe(204);
      const started = Date.now();
      let status = 200;
      while (Date.now() - started < 1000) {
        status = (await onB()).statusCode;
        if (status === 401) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(status).toBe(401);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(JSON.parse((await onB()).body).error.code).toBe("token_revoked");
    } finally {
      await second.close();
      await a.close();
    }
  });
});

describeOnPostgres("the shared LISTEN connection", () => {
  it("uses one connection for every channel, and reconnects when it is killed", async () => {
    const a = await startTestApp("postgres");
    const second = await startSecondServer(a);
    try {
      const db = new URL(a.url as string).pathname.slice(1);
      const listeners = async () =>
        (
          await a.db.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN %'",
            [db],
          )
        ).rows;
      // Two servers, three channels each (revocations, keys, apps): two connections.
      expect((await listeners()).length).toBe(2);
      for (const { pid } of await listeners())
        await a.db.query("SELECT pg_terminate_backend($1)", [pid]);

      const appId = await createApp(a);
      const token = await issueToken(a, appId, "roamer", ["read"]);
      const onB = () =>
        second.app.inject({
          method: "GET",
          url: `/api/v1/apps/${appId}/submissions`,
          headers: { authorization: `Bearer ${token}` },
        });
      expect((await onB()).statusCode).toBe(200);
      // Give the listeners their one-second reconnect, then a revocation must arrive by NOTIFY
      // (well before the 5 s reload would have found it).
      await new Promise((r) => setTimeout(r, 1500));
      expect((await listeners()).length).toBe(2);
      const jti = jwtPart(token, "payload").jti;
      expect(
        (await a.call({ method: "DELETE", url: `/admin/v1/apps/${appId}/tokens/${jti}` })).status,
      ).toBe(204);
      const started = Date.now();
      let status = 200;
      while (Date.now() - started < 1000) {
        status = (await onB()).statusCode;
        if (status === 401) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(status).toBe(401);
    } finally {
      await second.close();
      await a.close();
    }
  });
});
