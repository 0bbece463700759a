import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlState } from "../src/db/db";
import { asGateway, auditFor, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

const REQUEST_SCHEMA = {
  type: "object",
  required: ["title"],
  properties: {
    title: { type: "string", minLength: 1, maxLength: 100 },
    amount: { type: "integer", minimum: 0 },
  },
};
const BLOCKS = "owner-read owner-write assigned-reviewer";

/** The approval-queue template through the gateway, on PGlite and PostgreSQL. */
describe.each(DATASTORES)("approval-queue on %s", (kind) => {
  let t: TestApp;
  let appA: string;
  let appB: string;
  let ana: string; // requester
  let rita: string; // reviewer
  let ben: string; // neither
  const reqs = (app: string) => `/api/v1/apps/${app}/requests`;
  const createQueue = async (name: string) => {
    const res = await t.call({
      method: "POST",
      url: "/admin/v1/apps",
      body: {
        name,
        template: "approval-queue",
        owners: ["o@example.org"],
        payload_schema: REQUEST_SCHEMA,
      },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const file = (token: string, body: Record<string, unknown>, app = appA) =>
    t.call({ method: "POST", url: reqs(app), token, body });
  const move = (token: string, id: string, to: string, app = appA) =>
    t.call({ method: "POST", url: `${reqs(app)}/${id}/transitions`, token, body: { to } });
  const fresh = async () => {
    const res = await file(ana, {
      payload: { title: "Laptop", amount: 1200 },
      assigned_reviewer: "rita",
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };

  beforeAll(async () => {
    t = await startTestApp(kind);
    appA = await createQueue("Purchases");
    appB = await createQueue("Other");
    ana = await issueToken(t, appA, "ana", ["create", "read", "withdraw"]);
    rita = await issueToken(t, appA, "rita", ["read", "review"]);
    ben = await issueToken(t, appA, "ben", ["create", "read", "review", "withdraw"]);
  });
  afterAll(() => t?.close());

  it("files a request in state requested, audited with its policy", async () => {
    const res = await file(ana, { payload: { title: "Chair" }, assigned_reviewer: "rita" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      requester_id: "ana",
      assigned_reviewer: "rita",
      state: "requested",
      payload: { title: "Chair" },
    });
    expect((await auditFor(t.db, res.headers["x-request-id"] as string))[0]).toMatchObject({
      action: "request.create",
      policy_ids: ["owner-write.create"],
      resource_id: res.body.id,
    });
  });

  it("the reviewer starts the review and approves; each move is audited with its diff", async () => {
    const id = await fresh();
    const started = await move(rita, id, "reviewing");
    expect(started.status).toBe(200);
    expect(started.body.state).toBe("reviewing");
    const approved = await move(rita, id, "approved");
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ id, state: "approved", requester_id: "ana" });
    const events = await auditFor(t.db, approved.headers["x-request-id"] as string);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: "request.transition",
      actor_id: "rita",
      resource_id: id,
      outcome: "allowed",
      diff: { state: { from: "reviewing", to: "approved" } },
    });
    expect(events[0]?.policy_ids).toContain("assigned-reviewer.review");
    // The audit API shows the diff too.
    const api = await t.call({
      method: "GET",
      url: `/admin/v1/audit?app=${appA}&action=request.transition&limit=1`,
    });
    expect(api.body.items[0].diff).toEqual({ state: { from: "reviewing", to: "approved" } });
  });

  it("an illegal move is 409 with the moves this caller has from here", async () => {
    const id = await fresh();
    const skip = await move(rita, id, "approved"); // requested → approved skips the review
    expect(skip.status).toBe(409);
    expect(skip.body.error).toMatchObject({
      code: "transition_not_allowed",
      allowed: ["reviewing"],
    });
    const back = await move(ana, id, "requested");
    expect(back.status).toBe(409);
    expect(back.body.error.allowed).toEqual(["withdrawn"]);
    expect((await auditFor(t.db, skip.body.error.request_id))[0]).toMatchObject({
      action: "request.transition",
      outcome: "denied",
      error_code: "transition_not_allowed",
    });
    await move(rita, id, "reviewing");
    await move(rita, id, "rejected");
    const after = await move(rita, id, "reviewing");
    expect(after.status).toBe(409);
    expect(after.body.error.allowed).toEqual([]); // decided: final
    const state = await t.call({ method: "GET", url: `${reqs(appA)}/${id}`, token: ana });
    expect(state.body.state).toBe("rejected");
  });

  it("only the assigned reviewer reviews; only the requester withdraws", async () => {
    const id = await fresh();
    // ben holds review but is not assigned: he cannot even see the request.
    expect((await move(ben, id, "reviewing")).status).toBe(404);
    // the requester cannot review her own request (no scope, and no policy would allow it).
    const self = await move(ana, id, "reviewing");
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe("scope_missing");
    const anaAll = await issueToken(t, appA, "ana", ["read", "review", "withdraw"]);
    const selfWithScope = await move(anaAll, id, "reviewing");
    expect(selfWithScope.status).toBe(403);
    expect(selfWithScope.body.error.code).toBe("policy_denied");
    // the reviewer cannot withdraw.
    const ritaW = await issueToken(t, appA, "rita", ["read", "review", "withdraw"]);
    const noWithdraw = await move(ritaW, id, "withdrawn");
    expect(noWithdraw.status).toBe(403);
    expect(noWithdraw.body.error.code).toBe("policy_denied");
    const withdrawn = await move(ana, id, "withdrawn");
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body.state).toBe("withdrawn");
  });

  it("nobody reviews their own request: naming yourself is 422, and the table refuses it too", async () => {
    const res = await file(ana, { payload: { title: "Me" }, assigned_reviewer: "ana" });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("reviewer_is_requester");
    const sql = await asGateway(
      t.db,
      { app: appA, sub: "ana", scopes: "create", blocks: BLOCKS },
      (q) =>
        q
          .query(
            `INSERT INTO trellis.approval_queue_requests (id, app_id, requester_id, assigned_reviewer,
               payload, created_at, updated_at) VALUES (gen_random_uuid(), $1, 'ana', 'ana', '{}', now(), now())`,
            [appA],
          )
          .then(
            () => "no error",
            (e) => sqlState(e),
          ),
    );
    expect(sql).toBe("23514");
  });

  it("concurrent moves on one request: exactly one wins, the others get 409", async () => {
    const id = await fresh();
    await move(rita, id, "reviewing");
    const tries = await Promise.all(
      Array.from({ length: 8 }, (_, i) => move(rita, id, i % 2 === 0 ? "approved" : "rejected")),
    );
    const won = tries.filter((r) => r.status === 200);
    expect(won).toHaveLength(1);
    const lost = tries.filter((r) => r.status === 409);
    expect(lost).toHaveLength(7);
    for (const r of lost) {
      expect(r.body.error.code).toBe("transition_not_allowed");
      expect(r.body.error.allowed).toEqual([]);
    }
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events WHERE resource_id = $1 AND action = 'request.transition' AND outcome = 'allowed'",
      [id],
    );
    expect(rows[0]?.n).toBe(2); // reviewing, then the one winner
  });

  it("the database refuses illegal moves and changes to anything but the state, for every role", async () => {
    const id = await fresh();
    const asRita = (sql: string, action: string) =>
      asGateway(t.db, { app: appA, sub: "rita", scopes: "read review", blocks: BLOCKS }, (q) =>
        q
          .query("SELECT set_config('trellis.write_action', $1, true)", [action])
          .then(() => q.query(sql, [id]))
          .then(
            (r) => r.rowCount ?? 0,
            (e) => sqlState(e),
          ),
      );
    // requested → approved is not a legal move, whatever the role.
    expect(
      await asRita(
        "UPDATE trellis.approval_queue_requests SET state = 'approved' WHERE id = $1",
        "review",
      ),
    ).toBe("23514");
    // the payload is fixed (no column privilege, and the trigger for the owner).
    expect(
      await asRita(
        `UPDATE trellis.approval_queue_requests SET payload = '{"title":"x"}' WHERE id = $1`,
        "review",
      ),
    ).toBe("42501");
    // a withdraw named as the action does not let the reviewer move it (RLS: not the requester).
    expect(
      await asRita(
        "UPDATE trellis.approval_queue_requests SET state = 'withdrawn' WHERE id = $1",
        "withdraw",
      ),
    ).toBe(0);
    // The owner role (no RLS bypass for the trigger): illegal moves and deletes are refused.
    const owner = await t.db
      .query("UPDATE trellis.approval_queue_requests SET state = 'approved' WHERE id = $1", [id])
      .then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(owner).toBe("23514");
    const del = await t.db
      .query("DELETE FROM trellis.approval_queue_requests WHERE id = $1", [id])
      .then(
        () => "no error",
        (e) => sqlState(e),
      );
    expect(del).toBe("42501");
  });

  it("lists by role and state; each caller sees only their own and assigned requests", async () => {
    const id = await fresh();
    const mine = await t.call({ method: "GET", url: `${reqs(appA)}?role=requester`, token: ana });
    expect(mine.status).toBe(200);
    expect(mine.body.items.every((r: { requester_id: string }) => r.requester_id === "ana")).toBe(
      true,
    );
    const todo = await t.call({
      method: "GET",
      url: `${reqs(appA)}?role=reviewer&state=requested`,
      token: rita,
    });
    expect(todo.body.items.map((r: { id: string }) => r.id)).toContain(id);
    expect(todo.body.items.every((r: { state: string }) => r.state === "requested")).toBe(true);
    const bens = await t.call({ method: "GET", url: reqs(appA), token: ben });
    expect(bens.body.items).toEqual([]);
    const bad = await t.call({ method: "GET", url: `${reqs(appA)}?state=lost`, token: ana });
    expect(bad.status).toBe(400);
  });

  it("a custom forbid narrows the reviewer's list and get at once", async () => {
    const app = await createQueue("Narrowed");
    const a = await issueToken(t, app, "ana", ["create"]);
    const r = await issueToken(t, app, "rita", ["read", "review"]);
    const big = await file(
      a,
      { payload: { title: "Car", amount: 90000 }, assigned_reviewer: "rita" },
      app,
    );
    const small = await file(
      a,
      { payload: { title: "Pen", amount: 2 }, assigned_reviewer: "rita" },
      app,
    );
    const added = await t.call({
      method: "POST",
      url: `/admin/v1/apps/${app}/policy/custom`,
      body: {
        id: "custom.no-review-of-cars",
        cedar:
          'forbid (principal, action, resource is Trellis::Record) when { resource.owner == "ana" && principal.sub == "rita" && resource.state == "requested" };',
      },
    });
    expect(added.status).toBe(201);
    const list = await t.call({ method: "GET", url: reqs(app), token: r });
    expect(list.body.items).toEqual([]);
    expect(
      (await t.call({ method: "GET", url: `${reqs(app)}/${small.body.id}`, token: r })).status,
    ).toBe(404);
    const denied = await move(r, big.body.id, "reviewing", app);
    expect(denied.status).toBe(404);
    expect((await auditFor(t.db, denied.body.error.request_id))[0]?.policy_ids).toEqual([
      "custom.no-review-of-cars",
    ]);
  });

  it("app B never sees app A's requests, in HTTP and in SQL", async () => {
    const id = await fresh();
    const other = await issueToken(t, appB, "rita", ["read", "review", "read:all"]);
    expect((await t.call({ method: "GET", url: reqs(appB), token: other })).body.items).toEqual([]);
    expect((await t.call({ method: "GET", url: `${reqs(appB)}/${id}`, token: other })).status).toBe(
      404,
    );
    expect((await move(other, id, "reviewing", appB)).status).toBe(404);
    const sql = await asGateway(
      t.db,
      { app: appB, sub: "rita", scopes: "read read:all review", blocks: `${BLOCKS} app-read` },
      (q) => q.query("SELECT * FROM trellis.approval_queue_requests"),
    );
    expect(sql.rows).toEqual([]);
    // and the request in app A is untouched.
    expect(
      (await t.call({ method: "GET", url: `${reqs(appA)}/${id}`, token: ana })).body.state,
    ).toBe("requested");
  });

  it.each([
    ["a missing reviewer", { payload: { title: "x" } }, 400, "invalid_request"],
    [
      "a reviewer of the wrong type",
      { payload: { title: "x" }, assigned_reviewer: 7 },
      400,
      "invalid_request",
    ],
    [
      "an oversized reviewer",
      { payload: { title: "x" }, assigned_reviewer: "r".repeat(201) },
      400,
      "invalid_request",
    ],
    [
      "an extra field",
      { payload: { title: "x" }, assigned_reviewer: "rita", state: "approved" },
      400,
      "invalid_request",
    ],
    [
      "a payload that is not an object",
      { payload: "x", assigned_reviewer: "rita" },
      400,
      "invalid_request",
    ],
    [
      "an oversized payload value",
      { payload: { title: "x".repeat(101) }, assigned_reviewer: "rita" },
      422,
      "payload_invalid",
    ],
    [
      "a missing required payload field",
      { payload: { amount: 1 }, assigned_reviewer: "rita" },
      422,
      "payload_invalid",
    ],
  ])("refuses %s with a precise code, audited, nothing stored", async (_n, body, status, code) => {
    const count = async () =>
      (
        await t.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM trellis.approval_queue_requests WHERE app_id = $1",
          [appA],
        )
      ).rows[0]?.n;
    const before = await count();
    const res = await file(ana, body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "request.create",
      outcome: "denied",
      error_code: code,
    });
    expect(await count()).toBe(before);
  });

  it.each([
    ["an unknown state", { to: "done" }],
    ["a missing target", {}],
    ["an extra field", { to: "reviewing", state: "approved" }],
    ["a target of the wrong type", { to: 3 }],
  ])("refuses a transition with %s as invalid_request", async (_n, body) => {
    const id = await fresh();
    const res = await t.call({
      method: "POST",
      url: `${reqs(appA)}/${id}/transitions`,
      token: rita,
      body,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect((await auditFor(t.db, res.body.error.request_id))[0]).toMatchObject({
      action: "request.transition",
      outcome: "denied",
    });
  });

  it("the manifest's state machine is the one the database enforces", async () => {
    const manifest = JSON.parse(
      readFileSync(
        new URL("../../../templates/approval-queue/manifest.json", import.meta.url),
        "utf8",
      ),
    );
    const sm = manifest.state_machine as {
      states: string[];
      transitions: Record<string, string[]>;
      actions: Record<string, string>;
    };
    for (const from of sm.states) {
      for (const to of sm.states) {
        const { rows } = await t.db.query<{ a: string | null }>(
          "SELECT trellis.approval_queue_move($1, $2) AS a",
          [from, to],
        );
        const expected = (sm.transitions[from] ?? []).includes(to) ? sm.actions[to] : null;
        expect(`${from}→${to}: ${rows[0]?.a}`).toBe(`${from}→${to}: ${expected}`);
      }
    }
  });
});
