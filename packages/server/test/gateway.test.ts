import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditFor, createApp, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe.each(DATASTORES)("gateway (form-intake) on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  const tok: Record<string, string> = {};
  const sub = (app: string) => `/api/v1/apps/${app}/submissions`;
  const submit = (app: string, token: string, payload: unknown, form_id?: string) =>
    t.call({
      method: "POST",
      url: sub(app),
      token,
      body: { payload, ...(form_id ? { form_id } : {}) },
    });

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createApp(t, "A");
    appB = await createApp(t, "B");
    tok.alice = await issueToken(t, appA, "alice", ["create", "read", "delete"]);
    tok.bob = await issueToken(t, appA, "bob", ["create", "read"]);
    tok.manager = await issueToken(t, appA, "manager", ["read:all", "delete"]);
    tok.createOnly = await issueToken(t, appA, "kiosk", ["create"]);
    tok.carol = await issueToken(t, appB, "carol", ["create", "read", "read:all"]);
    for (const title of ["alice 1", "alice 2"])
      expect((await submit(appA, tok.alice as string, { title })).status).toBe(201);
    expect(
      (await submit(appA, tok.bob as string, { title: "bob 1", priority: "high" })).status,
    ).toBe(201);
    expect((await submit(appB, tok.carol as string, { title: "carol 1" })).status).toBe(201);
  });
  afterAll(() => t?.close());

  it("stores a submission with a server-minted id and the token's subject, and audits it in the same transaction", async () => {
    const res = await submit(
      appA,
      tok.createOnly as string,
      { title: "from kiosk", email: "k@example.com" },
      "intake-2",
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      app_id: appA,
      form_id: "intake-2",
      submitter_id: "kiosk",
      payload: { title: "from kiosk", email: "k@example.com" },
    });
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    const events = await auditFor(t.db, res.headers["x-request-id"] as string);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: "submission.create",
      outcome: "allowed",
      actor_id: "kiosk",
      actor_role: "app_user",
      app_id: appA,
      resource_id: res.body.id,
      error_code: null,
    });
    expect(events[0]?.token_id).toMatch(/^tok_/);
    const stored = await t.db.query(
      "SELECT submitter_id FROM trellis.form_intake_submissions WHERE id = $1",
      [res.body.id],
    );
    expect(stored.rows).toEqual([{ submitter_id: "kiosk" }]);
  });

  it("what create returns is exactly what get and list return later", async () => {
    const appC = await createApp(t, "C");
    const token = await issueToken(t, appC, "round-tripper", ["create", "read"]);
    const created = (await submit(appC, token, { title: "round trip", priority: "low" })).body;
    expect(created.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const got = await t.call({ method: "GET", url: `${sub(appC)}/${created.id}`, token });
    expect(got.body).toEqual(created);
    const listed = await t.call({ method: "GET", url: sub(appC), token });
    expect(listed.body.items).toEqual([created]);
  });

  it("a subject without read:all lists only its own submissions", async () => {
    const res = await t.call({ method: "GET", url: sub(appA), token: tok.alice });
    expect(res.status).toBe(200);
    expect(
      res.body.items.map((s: { payload: { title: string } }) => s.payload.title).sort(),
    ).toEqual(["alice 1", "alice 2"]);
    expect(new Set(res.body.items.map((s: { submitter_id: string }) => s.submitter_id))).toEqual(
      new Set(["alice"]),
    );
    const bob = await t.call({ method: "GET", url: sub(appA), token: tok.bob });
    expect(bob.body.items.map((s: { submitter_id: string }) => s.submitter_id)).toEqual(["bob"]);
  });

  it("read:all lists every submission of its own app and none of another app's", async () => {
    const res = await t.call({ method: "GET", url: sub(appA), token: tok.manager });
    expect(res.status).toBe(200);
    const subs = new Set(res.body.items.map((s: { submitter_id: string }) => s.submitter_id));
    expect(subs).toEqual(new Set(["alice", "bob", "kiosk"]));
    expect(res.body.items.every((s: { app_id: string }) => s.app_id === appA)).toBe(true);
    const b = await t.call({ method: "GET", url: sub(appB), token: tok.carol });
    expect(b.body.items.map((s: { payload: { title: string } }) => s.payload.title)).toEqual([
      "carol 1",
    ]);
  });

  it("get by id: own record yes; another subject's or another app's record is a 404 that is audited", async () => {
    const mine = (await t.call({ method: "GET", url: sub(appA), token: tok.alice })).body.items[0];
    const ok = await t.call({ method: "GET", url: `${sub(appA)}/${mine.id}`, token: tok.alice });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual(mine);
    const other = await t.call({ method: "GET", url: `${sub(appA)}/${mine.id}`, token: tok.bob });
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe("not_found");
    expect(JSON.stringify(other.body)).not.toContain("alice");
    const events = await auditFor(t.db, other.body.error.request_id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: "submission.get",
      outcome: "denied",
      error_code: "not_found",
      actor_id: "bob",
    });
    // B's token on B's URL asking for A's record id: 404, never the row.
    const cross = await t.call({ method: "GET", url: `${sub(appB)}/${mine.id}`, token: tok.carol });
    expect(cross.status).toBe(404);
  });

  it("soft-deletes: the row stays in the table, disappears from reads, and cannot be deleted twice", async () => {
    const created = (await submit(appA, tok.alice as string, { title: "to delete" })).body;
    const del = await t.call({
      method: "DELETE",
      url: `${sub(appA)}/${created.id}`,
      token: tok.alice,
    });
    expect(del.status).toBe(204);
    expect(
      (await t.call({ method: "GET", url: `${sub(appA)}/${created.id}`, token: tok.alice })).status,
    ).toBe(404);
    const list = await t.call({ method: "GET", url: sub(appA), token: tok.alice });
    expect(list.body.items.map((s: { id: string }) => s.id)).not.toContain(created.id);
    const row = await t.db.query<{ deleted_at: Date | null }>(
      "SELECT deleted_at FROM trellis.form_intake_submissions WHERE id = $1",
      [created.id],
    );
    expect(row.rows[0]?.deleted_at).toBeInstanceOf(Date);
    const again = await t.call({
      method: "DELETE",
      url: `${sub(appA)}/${created.id}`,
      token: tok.alice,
    });
    expect(again.status).toBe(404);
    expect((await auditFor(t.db, del.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "submission.delete",
      outcome: "allowed",
      resource_id: created.id,
    });
  });

  it("delete needs the delete scope and, under the default blocks, the caller's own row", async () => {
    const bobs = (await submit(appA, tok.bob as string, { title: "bob's" })).body;
    const byAlice = await t.call({
      method: "DELETE",
      url: `${sub(appA)}/${bobs.id}`,
      token: tok.alice,
    });
    expect(byAlice.status).toBe(404);
    expect(
      (await t.call({ method: "GET", url: `${sub(appA)}/${bobs.id}`, token: tok.bob })).status,
    ).toBe(200);
    const byBob = await t.call({
      method: "DELETE",
      url: `${sub(appA)}/${bobs.id}`,
      token: tok.bob,
    });
    expect(byBob.status).toBe(403);
    expect(byBob.body.error.code).toBe("scope_missing");
    const byManager = await t.call({
      method: "DELETE",
      url: `${sub(appA)}/${bobs.id}`,
      token: tok.manager,
    });
    // The manager can read bob's row (read:all) but owner-write lets only bob delete it.
    expect(byManager.status).toBe(403);
    expect(byManager.body.error.code).toBe("policy_denied");
    const [denial] = await auditFor(t.db, byManager.body.error.request_id);
    expect(denial).toMatchObject({ outcome: "denied", error_code: "policy_denied" });
    const bobDeleter = await issueToken(t, appA, "bob", ["read", "delete"]);
    const own = await t.call({
      method: "DELETE",
      url: `${sub(appA)}/${bobs.id}`,
      token: bobDeleter,
    });
    expect(own.status).toBe(204);
    const [event] = await auditFor(t.db, own.headers["x-request-id"] as string);
    expect(event?.policy_ids).toEqual(["owner-read", "owner-write.delete"]);
  });

  it("paginates with an opaque cursor, newest first, without gaps or repeats", async () => {
    const token = await issueToken(t, appA, "pager", ["create", "read"]);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await submit(appA, token, { title: `p${i}` })).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await t.call({
        method: "GET",
        url: `${sub(appA)}?limit=3${cursor ? `&cursor=${cursor}` : ""}`,
        token,
      });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((s: { id: string }) => s.id));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  it("bounds the page size and refuses forged cursors", async () => {
    for (const q of [
      "limit=0",
      "limit=201",
      "limit=abc",
      "cursor=not-a-cursor",
      `cursor=${b64({ id: "x" })}`,
      "unknown=1",
    ]) {
      const res = await t.call({ method: "GET", url: `${sub(appA)}?${q}`, token: tok.alice });
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBe("invalid_request");
    }
    const max = await t.call({ method: "GET", url: `${sub(appA)}?limit=200`, token: tok.manager });
    expect(max.status).toBe(200);
  });

  // ── bad input: each a precise 4xx with its code, audited, never data ──────────────────────
  const forge = async (kind: "none" | "hs256" | "tamper" | "unknown-kid" | "flip-sig") => {
    const real = tok.alice as string;
    const [h, p, s] = real.split(".") as [string, string, string];
    const header = JSON.parse(Buffer.from(h, "base64url").toString());
    switch (kind) {
      case "none":
        return `${b64({ alg: "none", typ: "JWT" })}.${p}.`;
      case "hs256": {
        const jwks = await t.db.query<{ public_jwk: { x: string } }>(
          "SELECT public_jwk FROM trellis.signing_keys",
        );
        const secret = Buffer.from(jwks.rows[0]?.public_jwk.x as string, "base64url");
        const payload = JSON.parse(Buffer.from(p, "base64url").toString());
        return new SignJWT(payload)
          .setProtectedHeader({ alg: "HS256", kid: header.kid })
          .sign(secret);
      }
      case "tamper": {
        const payload = JSON.parse(Buffer.from(p, "base64url").toString());
        return `${h}.${b64({ ...payload, scope: "create read read:all delete" })}.${s}`;
      }
      case "unknown-kid":
        return `${b64({ ...header, kid: "key_00000000000000000000000000" })}.${p}.${s}`;
      case "flip-sig": {
        const sig = Buffer.from(s, "base64url");
        sig[5] = (sig[5] as number) ^ 1;
        return `${h}.${p}.${sig.toString("base64url")}`;
      }
    }
  };

  const cases: Array<{
    name: string;
    req: () => Promise<{
      method: "GET" | "POST" | "DELETE";
      url: string;
      token?: string | null;
      body?: unknown;
      payload?: string;
      headers?: Record<string, string>;
    }>;
    status: number;
    code: string;
    actor?: string | null;
  }> = [
    {
      name: "no token",
      req: async () => ({ method: "GET", url: sub(appA), token: null }),
      status: 401,
      code: "auth_required",
      actor: null,
    },
    {
      name: "not a bearer header",
      req: async () => ({
        method: "GET",
        url: sub(appA),
        token: null,
        headers: { authorization: "Basic YWxpY2U6eA==" },
      }),
      status: 401,
      code: "auth_required",
      actor: null,
    },
    {
      name: "garbage token",
      req: async () => ({ method: "GET", url: sub(appA), token: "not.a.jwt" }),
      status: 401,
      code: "token_malformed",
      actor: null,
    },
    {
      name: "unsigned token (alg none)",
      req: async () => ({ method: "GET", url: sub(appA), token: await forge("none") }),
      status: 401,
      code: "token_alg_none",
      actor: null,
    },
    {
      name: "HS256 signed with the public key",
      req: async () => ({ method: "GET", url: sub(appA), token: await forge("hs256") }),
      status: 401,
      code: "token_alg_not_allowed",
      actor: null,
    },
    {
      name: "tampered claims",
      req: async () => ({ method: "GET", url: sub(appA), token: await forge("tamper") }),
      status: 401,
      code: "token_signature_invalid",
      actor: null,
    },
    {
      name: "bit-flipped signature",
      req: async () => ({ method: "GET", url: sub(appA), token: await forge("flip-sig") }),
      status: 401,
      code: "token_signature_invalid",
      actor: null,
    },
    {
      name: "unknown kid",
      req: async () => ({ method: "GET", url: sub(appA), token: await forge("unknown-kid") }),
      status: 401,
      code: "token_kid_unknown",
      actor: null,
    },
    {
      name: "token of another app",
      req: async () => ({ method: "GET", url: sub(appB), token: tok.alice }),
      status: 403,
      code: "token_wrong_app",
      actor: "alice",
    },
    {
      name: "unknown app",
      req: async () => ({
        method: "GET",
        url: sub("app_0000000000000000000000000z"),
        token: tok.alice,
      }),
      status: 403,
      code: "token_wrong_app",
      actor: "alice",
    },
    {
      name: "missing scope (read)",
      req: async () => ({ method: "GET", url: sub(appA), token: tok.createOnly }),
      status: 403,
      code: "scope_missing",
      actor: "kiosk",
    },
    {
      name: "missing scope (create)",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.manager,
        body: { payload: { title: "x" } },
      }),
      status: 403,
      code: "scope_missing",
      actor: "manager",
    },
    {
      name: "malformed JSON",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        payload: '{"payload": {"title": ',
      }),
      status: 400,
      code: "malformed_json",
      actor: "alice",
    },
    {
      name: "empty JSON body",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        payload: "",
        headers: { "content-type": "application/json" },
      }),
      status: 400,
      code: "malformed_json",
      actor: "alice",
    },
    {
      name: "body over the size limit",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x".repeat(70_000) } },
      }),
      status: 413,
      code: "body_too_large",
      actor: "alice",
    },
    {
      name: "not JSON",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        payload: "title=x",
        headers: { "content-type": "text/plain" },
      }),
      status: 415,
      code: "unsupported_media_type",
      actor: "alice",
    },
    {
      name: "envelope: payload missing",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { form_id: "default" },
      }),
      status: 400,
      code: "invalid_request",
      actor: "alice",
    },
    {
      name: "envelope: submitter smuggled in",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x" }, submitter_id: "bob" },
      }),
      status: 400,
      code: "invalid_request",
      actor: "alice",
    },
    {
      name: "envelope: bad form id",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x" }, form_id: "../../etc" },
      }),
      status: 400,
      code: "invalid_request",
      actor: "alice",
    },
    {
      name: "payload: required field missing",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { priority: "low" } },
      }),
      status: 422,
      code: "payload_invalid",
      actor: "alice",
    },
    {
      name: "payload: wrong type",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: 42 } },
      }),
      status: 422,
      code: "payload_invalid",
      actor: "alice",
    },
    {
      name: "payload: not in enum",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x", priority: "urgent" } },
      }),
      status: 422,
      code: "payload_invalid",
      actor: "alice",
    },
    {
      name: "payload: bad format",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x", email: "not-an-email" } },
      }),
      status: 422,
      code: "payload_invalid",
      actor: "alice",
    },
    {
      name: "payload: unknown field",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x", admin: true } },
      }),
      status: 422,
      code: "payload_invalid",
      actor: "alice",
    },
    {
      name: "payload: too long",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "x".repeat(121) } },
      }),
      status: 422,
      code: "payload_invalid",
      actor: "alice",
    },
    {
      name: "record id not a uuid",
      req: async () => ({ method: "GET", url: `${sub(appA)}/1%20OR%201=1`, token: tok.alice }),
      status: 400,
      code: "invalid_request",
      actor: "alice",
    },
    {
      // PostgreSQL's jsonb cannot hold U+0000: the schema lets the string through, the
      // database refuses it (22P05), and the caller gets their error, not `internal`.
      name: "a NUL character in the payload",
      req: async () => ({
        method: "POST",
        url: sub(appA),
        token: tok.alice,
        body: { payload: { title: "a\u0000b" } },
      }),
      status: 400,
      code: "invalid_request",
      actor: "alice",
    },
    {
      name: "a NUL character in a query filter",
      req: async () => ({ method: "GET", url: `${sub(appA)}?form_id=%00`, token: tok.alice }),
      status: 400,
      code: "invalid_request",
      actor: "alice",
    },
    {
      // Fastify's own errors before routing get the same body and are audited too.
      name: "a path segment over the length limit",
      req: async () => ({ method: "GET", url: `/api/v1/apps/${"a".repeat(3000)}/submissions` }),
      status: 400,
      code: "invalid_request",
      actor: null,
    },
    {
      name: "a malformed percent-encoding in the path",
      req: async () => ({ method: "GET", url: `/api/v1/apps/%E0%A4%A/submissions` }),
      status: 400,
      code: "invalid_request",
      actor: null,
    },
    {
      name: "unknown route",
      req: async () => ({ method: "GET", url: `/api/v1/apps/${appA}/secrets`, token: tok.alice }),
      status: 404,
      code: "route_not_found",
      actor: null,
    },
  ];

  it.each(cases)(
    "bad input: $name → $status $code, audited, nothing stored or leaked",
    async ({ req, status, code, actor }) => {
      const before = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.form_intake_submissions",
      );
      const res = await t.call(await req());
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.request_id).toBe(res.headers["x-request-id"]);
      expect(Object.keys(res.body)).toEqual(["error"]);
      const text = JSON.stringify(res.body);
      for (const leak of ["alice 1", "bob 1", "carol 1", "SELECT", "trellis.", "stack"])
        expect(text).not.toContain(leak);
      const events = await auditFor(t.db, res.body.error.request_id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ outcome: "denied", error_code: code });
      if (actor !== undefined) expect(events[0]?.actor_id).toBe(actor);
      const after = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM trellis.form_intake_submissions",
      );
      expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
    },
  );

  it("payload errors name the field and the rule, not internals", async () => {
    const res = await submit(appA, tok.alice as string, { title: 42, extra: 1 });
    expect(res.body.error.issues).toEqual(
      expect.arrayContaining([
        { path: "/payload/title", message: "must be string" },
        { path: "/payload", message: 'unknown field "extra"' },
      ]),
    );
  });

  it("an expired token is refused with token_expired, even after it was cached", async () => {
    const short = await issueToken(t, appA, "temp", ["read"], 60);
    expect((await t.call({ method: "GET", url: sub(appA), token: short })).status).toBe(200);
    t.clock.advance(120);
    try {
      const res = await t.call({ method: "GET", url: sub(appA), token: short });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("token_expired");
      expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
        outcome: "denied",
        error_code: "token_expired",
      });
    } finally {
      t.clock.advance(-120);
    }
  });

  it("a denial for another app is logged under the app that was targeted", async () => {
    const res = await t.call({ method: "GET", url: sub(appB), token: tok.bob });
    const [event] = await auditFor(t.db, res.body.error.request_id);
    expect(event).toMatchObject({ app_id: appB, actor_id: "bob", error_code: "token_wrong_app" });
  });

  it.each([
    ["gateway", () => `/api/v1/apps/${appA}/submissions?access_token=${tok.alice}`],
    ["gateway, with a valid header too", () => `/api/v1/apps/${appA}/submissions?limit=5&token=x`],
    ["control plane", () => `/admin/v1/audit?jwt=abc`],
  ])(
    "a token in the query string is refused (%s) and the URL's query is never logged",
    async (_n, url) => {
      const res = await t.call({ method: "GET", url: url(), token: tok.alice });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("token_in_query");
      expect(res.body.items).toBeUndefined();
      const events = await auditFor(t.db, res.body.error.request_id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ outcome: "denied", error_code: "token_in_query" });
      expect(JSON.stringify(events)).not.toContain((tok.alice as string).slice(-20));
    },
  );

  it("a token never travels in the URL: the log keeps only the path", async () => {
    const res = await t.call({
      method: "GET",
      url: `/api/v1/nowhere?access_token=${tok.alice}`,
      token: null,
    });
    expect(res.status).toBe(404);
    const [event] = await auditFor(t.db, res.body.error.request_id);
    expect(event?.resource_id).toBe("GET /api/v1/nowhere");
  });
});
