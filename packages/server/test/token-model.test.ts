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

/** Issue 3, items 1, 4 and the pause: labels, environments, renewal, paused apps. */
describe.each(DATASTORES)("token model on %s", (kind) => {
  let t: TestApp;
  let devApp: string;
  let prodApp: string;
  const tokens = (app: string) => `/admin/v1/apps/${app}/tokens`;
  const list = (app: string, token: string) =>
    t.call({ method: "GET", url: `/api/v1/apps/${app}/submissions`, token });

  beforeAll(async () => {
    t = await startTestApp(kind);
    devApp = await createApp(t, "Dev");
    prodApp = await createApp(t, "Prod", { environment: "prod" });
  });
  afterAll(() => t?.close());

  it("a token carries its row labels and environment, in the JWT and in the token list", async () => {
    const res = await t.call({
      method: "POST",
      url: tokens(devApp),
      body: { subject: "hana", scopes: ["read"], labels: { team: "hr", region: "eu" } },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ labels: { team: "hr", region: "eu" }, environment: "dev" });
    const claims = jwtPart(res.body.token, "payload");
    expect(claims).toMatchObject({ labels: ["region=eu", "team=hr"], env: "dev", aud: devApp });
    expect((claims.exp as number) - (claims.iat as number)).toBe(3600); // the default, 1 h
    const listed = await t.call({ method: "GET", url: tokens(devApp) });
    expect(
      listed.body.items.find((i: { token_id: string }) => i.token_id === res.body.token_id),
    ).toMatchObject({ labels: { team: "hr", region: "eu" }, environment: "dev" });
    expect(JSON.stringify(listed.body)).not.toContain(res.body.token);
  });

  it("the maximum lifetime depends on the environment: prod is shorter than dev", async () => {
    const { prod, dev } = t.config.tokenMaxTtlByEnv;
    expect(prod).toBeLessThan(dev);
    const prodLong = await t.call({
      method: "POST",
      url: tokens(prodApp),
      body: { subject: "p", scopes: ["read"], ttl_seconds: prod + 60 },
    });
    expect(prodLong.status).toBe(400);
    expect(prodLong.body.error.code).toBe("ttl_out_of_range");
    expect(prodLong.body.error.issues[0].message).toContain(`${prod} for a prod token`);
    // A prod app may still hand out a dev token (for testing), which lives longer.
    const devOnProd = await t.call({
      method: "POST",
      url: tokens(prodApp),
      body: { subject: "p", scopes: ["read"], ttl_seconds: prod + 60, environment: "dev" },
    });
    expect(devOnProd.status).toBe(201);
    expect(devOnProd.body.environment).toBe("dev");
    const prodDefault = await t.call({
      method: "POST",
      url: tokens(prodApp),
      body: { subject: "p", scopes: ["read"] },
    });
    expect(prodDefault.body.environment).toBe("prod");
    const c = jwtPart(prodDefault.body.token, "payload");
    expect((c.exp as number) - (c.iat as number)).toBeLessThanOrEqual(prod);
  });

  it.each([
    ["a key with spaces", { "team hr": "x" }],
    ["a value with '='", { team: "a=b" }],
    ["nine labels", Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, "v"]))],
  ])("labels with %s are refused with labels_invalid, nothing issued", async (_n, labels) => {
    const before = await t.call({ method: "GET", url: tokens(devApp) });
    const res = await t.call({
      method: "POST",
      url: tokens(devApp),
      body: { subject: "x", scopes: ["read"], labels },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("labels_invalid");
    const after = await t.call({ method: "GET", url: tokens(devApp) });
    expect(after.body.items.length).toBe(before.body.items.length);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "token.create",
      outcome: "denied",
      error_code: "labels_invalid",
    });
  });

  describe("renewal", () => {
    const renew = (app: string, id: string, body: Record<string, unknown> = {}) =>
      t.call({ method: "POST", url: `${tokens(app)}/${id}/renew`, body });

    it("same scopes: a fresh token for the same subject, labels and environment", async () => {
      const first = await t.call({
        method: "POST",
        url: tokens(devApp),
        body: { subject: "rene", scopes: ["read", "create"], labels: { team: "it" } },
      });
      t.clock.advance(60); // seconds
      const res = await renew(devApp, first.body.token_id);
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        subject: "rene",
        scopes: ["create", "read"],
        labels: { team: "it" },
        environment: "dev",
        renewed_from: first.body.token_id,
      });
      expect(res.body.token_id).not.toBe(first.body.token_id);
      expect((await list(devApp, res.body.token)).status).toBe(200);
      expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
        action: "token.renew",
        outcome: "allowed",
        resource_id: res.body.token_id,
      });
      // Fewer scopes is within policy, too.
      const narrower = await renew(devApp, first.body.token_id, { scopes: ["read"] });
      expect(narrower.status).toBe(201);
      expect(narrower.body.scopes).toEqual(["read"]);
    });

    it("more scope or a longer life than policy allows: 202 with a pending approval request", async () => {
      const first = await issueToken(t, prodApp, "greedy", ["read"]);
      const id = jwtPart(first, "payload").jti as string;
      const more = await renew(prodApp, id, { scopes: ["read", "read:all"] });
      expect(more.status).toBe(202);
      expect(more.body).toMatchObject({ status: "pending" });
      expect(more.body.approval_request_id).toMatch(/^apr_/);
      expect(more.body.reason).toContain("read:all");
      const longer = await renew(prodApp, id, { ttl_seconds: t.config.tokenMaxTtlByEnv.prod * 2 });
      expect(longer.status).toBe(202);
      expect(longer.body.reason).toContain("prod token may live at most");
      expect(longer.body.token).toBeUndefined();
      const pending = await t.call({
        method: "GET",
        url: `/admin/v1/apps/${prodApp}/approval-requests`,
      });
      expect(pending.status).toBe(200);
      const ids = pending.body.items.map((i: { id: string }) => i.id);
      expect(ids).toEqual(
        expect.arrayContaining([more.body.approval_request_id, longer.body.approval_request_id]),
      );
      expect(pending.body.items[0]).toMatchObject({ kind: "token_renewal", status: "pending" });
      expect(
        pending.body.items.find((i: { id: string }) => i.id === more.body.approval_request_id)
          .request,
      ).toMatchObject({ token_id: id, subject: "greedy", scopes: ["read", "read:all"] });
      // No token was issued for either.
      const listed = await t.call({ method: "GET", url: tokens(prodApp) });
      expect(
        listed.body.items.filter((i: { subject: string }) => i.subject === "greedy"),
      ).toHaveLength(1);
    });

    it("a revoked token cannot be renewed (409); an unknown one is 404; a scope outside the template is 400", async () => {
      const token = await issueToken(t, devApp, "gone", ["read"]);
      const id = jwtPart(token, "payload").jti as string;
      await t.call({ method: "DELETE", url: `${tokens(devApp)}/${id}` });
      const res = await renew(devApp, id);
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe("token_not_renewable");
      const unknown = await renew(devApp, "tok_0000000000000000000000000z");
      expect(unknown.status).toBe(404);
      const live = jwtPart(await issueToken(t, devApp, "x", ["read"]), "payload").jti as string;
      const bad = await renew(devApp, live, { scopes: ["read", "root"] });
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe("scope_unknown");
      // Another app's token id is not found under this app.
      expect((await renew(prodApp, live)).status).toBe(404);
    });
  });

  describe("pause", () => {
    it("a paused app refuses its tokens (app_paused, audited) and issues none; resume needs new tokens", async () => {
      const app = await createApp(t, "Pausable");
      const token = await issueToken(t, app, "pat", ["read", "create"]);
      expect((await list(app, token)).status).toBe(200);
      const paused = await t.call({ method: "POST", url: `/admin/v1/apps/${app}/pause` });
      expect(paused.status).toBe(200);
      expect(paused.body.status).toBe("paused");
      const refused = await list(app, token);
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe("app_paused");
      expect(refused.body.items).toBeUndefined();
      expect((await auditFor(t.db, refused.body.error.request_id))[0]).toMatchObject({
        outcome: "denied",
        error_code: "app_paused",
        actor_id: "pat",
      });
      const write = await t.call({
        method: "POST",
        url: `/api/v1/apps/${app}/submissions`,
        token,
        body: { payload: { title: "while paused" } },
      });
      expect(write.status).toBe(403);
      const issue = await t.call({
        method: "POST",
        url: tokens(app),
        body: { subject: "pat", scopes: ["read"] },
      });
      expect(issue.status).toBe(403);
      expect(issue.body.error.code).toBe("app_paused");
      const again = await t.call({ method: "POST", url: `/admin/v1/apps/${app}/pause` });
      expect(again.status).toBe(200); // idempotent

      t.clock.advance(2); // seconds
      const resumed = await t.call({ method: "POST", url: `/admin/v1/apps/${app}/resume` });
      expect(resumed.status).toBe(200);
      expect(resumed.body.status).toBe("active");
      const old = await list(app, token);
      expect(old.status).toBe(401);
      expect(old.body.error.code).toBe("token_revoked");
      const fresh = await issueToken(t, app, "pat", ["read"]);
      expect((await list(app, fresh)).status).toBe(200);
      const notPaused = await t.call({ method: "POST", url: `/admin/v1/apps/${app}/resume` });
      expect(notPaused.status).toBe(409);
      expect(notPaused.body.error.code).toBe("app_not_active");
      const events = await t.call({
        method: "GET",
        url: `/admin/v1/audit?app=${app}&action=app.pause`,
      });
      expect(events.body.items.length).toBe(2);
    });
  });
});

describeOnPostgres("governance changes across servers sharing one PostgreSQL", () => {
  it("a pause and a policy change reach the other server within one second", async () => {
    const a = await startTestApp("postgres");
    const second = await startSecondServer(a);
    try {
      const appId = await createApp(a);
      const token = await issueToken(a, appId, "roamer", ["read", "create"]);
      const onB = (method: "GET" | "POST") =>
        second.app.inject({
          method,
          url: `/api/v1/apps/${appId}/submissions`,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          ...(method === "POST" ? { payload: JSON.stringify({ payload: { title: "x" } }) } : {}),
        });
      const until = async (method: "GET" | "POST", want: number) => {
        const started = Date.now();
        let status = 0;
        while (Date.now() - started < 1000) {
          status = (await onB(method)).statusCode;
          if (status === want) break;
          await new Promise((r) => setTimeout(r, 25));
        }
        return { status, ms: Date.now() - started };
      };
      expect((await onB("POST")).statusCode).toBe(201);
      const ro = await a.call({
        method: "PUT",
        url: `/admin/v1/apps/${appId}/policy/blocks`,
        body: { blocks: ["owner-read", "owner-write", "app-read", "read-only"] },
      });
      expect(ro.status).toBe(200);
      const policy = await until("POST", 403);
      expect(policy.status).toBe(403);
      expect(policy.ms).toBeLessThan(1000);
      expect((await a.call({ method: "POST", url: `/admin/v1/apps/${appId}/pause` })).status).toBe(
        200,
      );
      const pause = await until("GET", 403);
      expect(pause.status).toBe(403);
      expect((await onB("GET")).body).toContain("app_paused");
    } finally {
      await second.close();
      await a.close();
    }
  });
});
