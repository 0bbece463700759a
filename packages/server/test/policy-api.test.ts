import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditFor, createApp, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

/** Issue 3, items 5, 6, 8, 9 and 10 through the HTTP API. */
describe.each(DATASTORES)("policy blocks, custom policies and explain on %s", (kind) => {
  let t: TestApp;
  const sub = (app: string) => `/api/v1/apps/${app}/submissions`;
  const submit = (app: string, token: string, body: Record<string, unknown>) =>
    t.call({ method: "POST", url: sub(app), token, body });
  const titles = (res: { body: { items: Array<{ payload: { title: string } }> } }) =>
    res.body.items.map((i) => i.payload.title).sort();
  const tokenWith = async (
    app: string,
    subject: string,
    scopes: string[],
    extra: Record<string, unknown> = {},
  ) => {
    const res = await t.call({
      method: "POST",
      url: `/admin/v1/apps/${app}/tokens`,
      body: { subject, scopes, ...extra },
    });
    if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    return res.body.token as string;
  };

  beforeAll(async () => {
    t = await startTestApp(kind);
  });
  afterAll(() => t?.close());

  it("lists the block library with plain words, Cedar text and the SQL predicate", async () => {
    const res = await t.call({ method: "GET", url: "/admin/v1/policy/blocks" });
    expect(res.status).toBe(200);
    expect(res.body.items.map((b: { id: string }) => b.id)).toEqual([
      "owner-read",
      "owner-write",
      "app-read",
      "admin-read",
      "label-scoped",
      "assigned-reviewer",
      "read-only",
      "prod-writes-only",
    ]);
    const label = res.body.items.find((b: { id: string }) => b.id === "label-scoped");
    expect(label).toMatchObject({ effect: "forbid", title: "Label-scoped access" });
    expect(label.cedar["label-scoped"]).toContain("forbid");
  });

  it("a new app gets its template's default blocks; its policy shows the Cedar set and schema", async () => {
    const app = await createApp(t);
    const res = await t.call({ method: "GET", url: `/admin/v1/apps/${app}/policy` });
    expect(res.status).toBe(200);
    expect(res.body.blocks).toEqual(["owner-read", "owner-write", "app-read"]);
    expect(Object.keys(res.body.cedar).sort()).toEqual([
      "app-read",
      "owner-read",
      "owner-write.create",
      "owner-write.delete",
    ]);
    expect(res.body.cedar_schema).toContain("entity Record");
  });

  it("an unknown block is refused (policy_block_unknown), at creation and on change", async () => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name: "x",
        template: "form-intake",
        owners: ["o"],
        payload_schema: { type: "object" },
        policy_blocks: ["owner-read", "everyone-reads"],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("policy_block_unknown");
    const app = await createApp(t);
    const put = await t.call({
      method: "PUT",
      url: `/admin/v1/apps/${app}/policy/blocks`,
      body: { blocks: ["nope"] },
    });
    expect(put.status).toBe(400);
    expect(put.body.error.code).toBe("policy_block_unknown");
  });

  it("label-scoped: records carry their creator's labels; other teams never see them; audit names the policies", async () => {
    const app = await createApp(t, "Teams", {
      policy_blocks: ["app-read", "owner-write", "label-scoped"],
    });
    const hr = await tokenWith(app, "hana", ["create", "read:all"], { labels: { team: "hr" } });
    const it_ = await tokenWith(app, "ivan", ["create", "read:all"], { labels: { team: "it" } });
    const nolabel = await tokenWith(app, "nora", ["create", "read:all"]);
    const created = await submit(app, hr, { payload: { title: "hr-1" } });
    expect(created.status).toBe(201);
    expect(created.body.labels).toEqual({ team: "hr" });
    const [event] = await auditFor(t.db, created.headers["x-request-id"] as string);
    expect(event).toMatchObject({
      action: "submission.create",
      policy_ids: ["owner-write.create"],
    });
    expect((await submit(app, it_, { payload: { title: "it-1" } })).status).toBe(201);
    const denied = await submit(app, nolabel, { payload: { title: "none" } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("policy_denied");
    expect((await auditFor(t.db, denied.body.error.request_id))[0]).toMatchObject({
      outcome: "denied",
      error_code: "policy_denied",
      policy_ids: ["label-scoped"],
    });
    const hrList = await t.call({ method: "GET", url: sub(app), token: hr });
    expect(titles(hrList)).toEqual(["hr-1"]);
    expect((await auditFor(t.db, hrList.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "submission.list",
      policy_ids: ["app-read", "label-scoped"],
    });
    expect(titles(await t.call({ method: "GET", url: sub(app), token: it_ }))).toEqual(["it-1"]);
    expect(titles(await t.call({ method: "GET", url: sub(app), token: nolabel }))).toEqual([]);
    const hrGetByIt = await t.call({
      method: "GET",
      url: `${sub(app)}/${created.body.id}`,
      token: it_,
    });
    expect(hrGetByIt.status).toBe(404);
  });

  it("read-only, chosen later, stops writes at once; reads go on", async () => {
    const app = await createApp(t);
    const token = await issueToken(t, app, "rob", ["create", "read"]);
    expect((await submit(app, token, { payload: { title: "before" } })).status).toBe(201);
    const put = await t.call({
      method: "PUT",
      url: `/admin/v1/apps/${app}/policy/blocks`,
      body: { blocks: ["owner-read", "owner-write", "read-only"] },
    });
    expect(put.status).toBe(200);
    expect(put.body.blocks).toContain("read-only");
    expect((await auditFor(t.db, put.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "policy.update",
      policy_ids: ["owner-read", "owner-write", "read-only"],
    });
    const after = await submit(app, token, { payload: { title: "after" } });
    expect(after.status).toBe(403);
    expect(after.body.error.code).toBe("policy_denied");
    expect((await auditFor(t.db, after.body.error.request_id))[0]?.policy_ids).toEqual([
      "read-only",
    ]);
    expect(titles(await t.call({ method: "GET", url: sub(app), token }))).toEqual(["before"]);
  });

  it("admin-read: a key with only admin:read reads every record; without the block it reads nothing", async () => {
    const app = await createApp(t, "Support", {
      policy_blocks: ["owner-read", "owner-write", "admin-read"],
    });
    const alice = await issueToken(t, app, "alice", ["create", "read"]);
    const bob = await issueToken(t, app, "bob", ["create", "read"]);
    await submit(app, alice, { payload: { title: "a" } });
    await submit(app, bob, { payload: { title: "b" } });
    const support = await issueToken(t, app, "support", ["admin:read"]);
    const listed = await t.call({ method: "GET", url: sub(app), token: support });
    expect(listed.status).toBe(200);
    expect(titles(listed)).toEqual(["a", "b"]);
    expect((await auditFor(t.db, listed.headers["x-request-id"] as string))[0]?.policy_ids).toEqual(
      ["admin-read", "owner-read"],
    );
    await t.call({
      method: "PUT",
      url: `/admin/v1/apps/${app}/policy/blocks`,
      body: { blocks: ["owner-read", "owner-write"] },
    });
    expect(titles(await t.call({ method: "GET", url: sub(app), token: support }))).toEqual([]);
  });

  it("prod-writes-only: in a prod app a dev key reads but cannot write; a prod key writes", async () => {
    const app = await createApp(t, "Prod", {
      environment: "prod",
      policy_blocks: ["owner-read", "owner-write", "prod-writes-only"],
    });
    const prodKey = await tokenWith(app, "pia", ["create", "read"]);
    const devKey = await tokenWith(app, "pia", ["create", "read"], { environment: "dev" });
    expect((await submit(app, prodKey, { payload: { title: "from prod" } })).status).toBe(201);
    const dev = await submit(app, devKey, { payload: { title: "from dev" } });
    expect(dev.status).toBe(403);
    expect(dev.body.error.code).toBe("policy_denied");
    expect(titles(await t.call({ method: "GET", url: sub(app), token: devKey }))).toEqual([
      "from prod",
    ]);
  });

  it("assigned-reviewer: the reviewer a submission names can read it, nobody else through that block", async () => {
    const app = await createApp(t, "Review", {
      policy_blocks: ["owner-read", "owner-write", "assigned-reviewer"],
    });
    const alice = await issueToken(t, app, "alice", ["create", "read"]);
    const rita = await issueToken(t, app, "rita", ["read"]);
    const sam = await issueToken(t, app, "sam", ["read"]);
    const made = await submit(app, alice, {
      payload: { title: "for rita" },
      assigned_reviewer: "rita",
    });
    expect(made.status).toBe(201);
    expect(made.body.assigned_reviewer).toBe("rita");
    expect(titles(await t.call({ method: "GET", url: sub(app), token: rita }))).toEqual([
      "for rita",
    ]);
    const got = await t.call({ method: "GET", url: `${sub(app)}/${made.body.id}`, token: rita });
    expect(got.status).toBe(200);
    expect((await auditFor(t.db, got.headers["x-request-id"] as string))[0]?.policy_ids).toEqual([
      "assigned-reviewer",
    ]);
    expect(titles(await t.call({ method: "GET", url: sub(app), token: sam }))).toEqual([]);
  });

  describe("custom policies", () => {
    let app: string;
    let manager: string;
    let bob: string;
    const custom = (body: Record<string, unknown>) =>
      t.call({ method: "POST", url: `/admin/v1/apps/${app}/policy/custom`, body });

    beforeAll(async () => {
      app = await createApp(t, "Custom");
      manager = await issueToken(t, app, "manager", ["read:all"]);
      bob = await issueToken(t, app, "bob", ["create", "read"]);
      const alice = await issueToken(t, app, "alice", ["create", "read"]);
      await submit(app, bob, { payload: { title: "bob's" } });
      await submit(app, alice, { payload: { title: "alice's" } });
    });

    it("a forbid narrows access at once: Cedar checks it at the gateway on every row", async () => {
      const res = await custom({
        id: "custom.hide-bob",
        cedar:
          'forbid (principal, action == Trellis::Action::"read", resource is Trellis::Record) when { resource.owner == "bob" && principal.sub != "bob" };',
      });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        policy: { id: "custom.hide-bob", effect: "forbid", status: "active" },
        approval_request_id: null,
      });
      expect(titles(await t.call({ method: "GET", url: sub(app), token: manager }))).toEqual([
        "alice's",
      ]);
      expect(titles(await t.call({ method: "GET", url: sub(app), token: bob }))).toEqual(["bob's"]);
      const removed = await t.call({
        method: "DELETE",
        url: `/admin/v1/apps/${app}/policy/custom/custom.hide-bob`,
      });
      expect(removed.status).toBe(204);
      expect(titles(await t.call({ method: "GET", url: sub(app), token: manager }))).toEqual([
        "alice's",
        "bob's",
      ]);
    });

    it.each([
      ["does not parse", "forbid (principal, action, resource) when {", /parse|unexpected/i],
      [
        "names an attribute the schema lacks",
        "forbid (principal, action, resource is Trellis::Record) when { resource.salary > 10 };",
        /salary/,
      ],
      [
        "names an action the template lacks",
        'forbid (principal, action == Trellis::Action::"approve", resource);',
        /approve/,
      ],
      [
        "holds two policies",
        "forbid (principal, action, resource) when { false }; forbid (principal, action, resource) when { false };",
        /exactly one/,
      ],
    ])(
      "a custom policy that %s is refused (policy_invalid); the old set keeps answering",
      async (_n, cedar, message) => {
        const before = await t.call({ method: "GET", url: `/admin/v1/apps/${app}/policy` });
        const res = await custom({ id: "custom.broken", cedar });
        expect(res.status).toBe(422);
        expect(res.body.error.code).toBe("policy_invalid");
        expect(res.body.error.issues[0].message).toMatch(message);
        expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
          action: "policy.custom_add",
          outcome: "denied",
          error_code: "policy_invalid",
        });
        const after = await t.call({ method: "GET", url: `/admin/v1/apps/${app}/policy` });
        expect(after.body.version).toBe(before.body.version);
        expect(after.body.cedar).toEqual(before.body.cedar);
        expect((await t.call({ method: "GET", url: sub(app), token: manager })).status).toBe(200);
      },
    );

    it("a permit would widen access: it waits for a steward (202) and is not in effect", async () => {
      const res = await custom({
        id: "custom.everyone-reads",
        cedar: 'permit (principal, action == Trellis::Action::"read", resource);',
      });
      expect(res.status).toBe(202);
      expect(res.body.policy).toMatchObject({ effect: "permit", status: "pending_approval" });
      expect(res.body.approval_request_id).toMatch(/^apr_/);
      const view = await t.call({ method: "GET", url: `/admin/v1/apps/${app}/policy` });
      expect(Object.keys(view.body.cedar)).not.toContain("custom.everyone-reads");
      expect(view.body.custom_policies.map((c: { id: string }) => c.id)).toContain(
        "custom.everyone-reads",
      );
      expect(titles(await t.call({ method: "GET", url: sub(app), token: bob }))).toEqual(["bob's"]);
      const approvals = await t.call({
        method: "GET",
        url: `/admin/v1/apps/${app}/approval-requests`,
      });
      expect(approvals.body.items[0]).toMatchObject({
        id: res.body.approval_request_id,
        kind: "custom_permit",
        status: "pending",
      });
      const dup = await custom({
        id: "custom.everyone-reads",
        cedar: "forbid (principal, action, resource) when { false };",
      });
      expect(dup.status).toBe(409);
      expect(dup.body.error.code).toBe("policy_exists");
    });
  });

  describe("explain", () => {
    let app: string;
    let recordId: string;
    let aliceToken: string;
    const explain = (body: Record<string, unknown>) =>
      t.call({ method: "POST", url: `/admin/v1/apps/${app}/policy/explain`, body });

    beforeAll(async () => {
      app = await createApp(t, "Explain", {
        policy_blocks: ["owner-read", "owner-write", "app-read", "label-scoped"],
      });
      aliceToken = await tokenWith(app, "alice", ["create", "read", "delete"], {
        labels: { team: "hr" },
      });
      recordId = (await submit(app, aliceToken, { payload: { title: "a" } })).body.id;
    });

    it("with a token and a record id: allow, the deciding policies, and the row filter", async () => {
      const res = await explain({ token: aliceToken, action: "read", record_id: recordId });
      expect(res.status).toBe(200);
      expect(res.body.decision).toBe("allow");
      expect(res.body.determining_policies.map((p: { id: string }) => p.id)).toEqual([
        "owner-read",
      ]);
      expect(res.body.determining_policies[0].cedar).toContain("permit");
      expect(res.body.sql_filter).toContain("submitter_id = 'alice'");
      expect(res.body.sql_filter).toContain("labels @> ARRAY['team=hr']");
      expect(res.body.resource).toMatchObject({ owner: "alice", labels: { team: "hr" } });
      expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
        action: "policy.explain",
        policy_ids: ["owner-read"],
      });
    });

    it("with a principal and a resource: deny, naming the forbid that matched", async () => {
      const res = await explain({
        principal: { sub: "ivan", scopes: ["read:all"], labels: { team: "it" } },
        action: "read",
        resource: { owner: "alice", labels: { team: "hr" } },
      });
      expect(res.body.decision).toBe("deny");
      expect(res.body.determining_policies).toMatchObject([
        { id: "label-scoped", effect: "forbid" },
      ]);
      expect(res.body.reasons[0]).toContain("forbidden by label-scoped");
    });

    it("works for every action: create (no record needed) and delete (the read rule shows)", async () => {
      const create = await explain({
        principal: { sub: "bob", scopes: ["create"], labels: { team: "hr" } },
        action: "create",
      });
      expect(create.body).toMatchObject({ decision: "allow" });
      expect(create.body.determining_policies.map((p: { id: string }) => p.id)).toEqual([
        "owner-write.create",
      ]);
      const del = await explain({
        principal: { sub: "bob", scopes: ["delete", "read"], labels: { team: "hr" } },
        action: "delete",
        record_id: recordId,
      });
      expect(del.body.decision).toBe("deny");
      expect(del.body.reasons.join(" ")).toContain("no policy permits");
      expect(del.body.reasons.join(" ")).toContain("also needs the record to be readable");
      const noRecord = await explain({
        principal: { sub: "bob", scopes: ["delete"] },
        action: "delete",
      });
      expect(noRecord.body.decision).toBe("deny");
      expect(noRecord.body.sql_filter).toContain("submitter_id = 'bob'");
    });

    it.each([
      [
        "an action the template lacks",
        { principal: { sub: "a" }, action: "approve" },
        "invalid_request",
      ],
      [
        "both principal and token",
        { principal: { sub: "a" }, token: "x", action: "read" },
        "invalid_request",
      ],
      ["a token that does not verify", { token: "not.a.jwt", action: "read" }, "invalid_request"],
      [
        "bad labels",
        { principal: { sub: "a", labels: { "b a d": "x" } }, action: "create" },
        "labels_invalid",
      ],
    ])("refuses %s with a clear code", async (_n, body, code) => {
      const res = await explain(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(code);
    });

    it("an unknown record is 404", async () => {
      const res = await explain({
        principal: { sub: "a", scopes: ["read"] },
        action: "read",
        record_id: "00000000-0000-7000-8000-000000000000",
      });
      expect(res.status).toBe(404);
    });
  });

  describe("an app's own policy tests (the block suites' YAML format)", () => {
    it("runs a suite against the app's current policies and reports each case", async () => {
      const app = await createApp(t);
      const suite = `
principals:
  alice: { sub: alice, scopes: [read] }
  boss: { sub: boss, scopes: ["read:all"] }
resources:
  alices: { owner: alice }
  bobs: { owner: bob }
tests:
  - { name: alice reads hers, principal: alice, action: read, resource: alices, expect: allow }
  - { name: alice not bob's, principal: alice, action: read, resource: bobs, expect: deny }
  - { name: the boss reads all, principal: boss, action: read, resource: bobs, expect: allow }
  - { name: wrong on purpose, principal: alice, action: read, resource: bobs, expect: allow }
`;
      const res = await t.call({
        method: "POST",
        url: `/admin/v1/apps/${app}/policy/test`,
        headers: { "content-type": "application/yaml" },
        payload: suite,
        body: undefined,
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ passed: 3, failed: 1 });
      expect(res.body.results[3]).toMatchObject({ ok: false, expected: "allow", actual: "deny" });
      const bad = await t.call({
        method: "POST",
        url: `/admin/v1/apps/${app}/policy/test`,
        headers: { "content-type": "application/yaml" },
        payload: "tests: [",
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe("policy_test_invalid");
    });
  });
});
