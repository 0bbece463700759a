/**
 * The server under test, run as a child process of bench/run.ts so the load generator does not
 * share its event loop. It builds the real app (buildApp + the pg driver, config from the
 * environment through parseConfig) and, before listening, adds two *ungoverned* baseline routes
 * that run the same SQL as the governed form-intake routes directly as the owner: no token, no
 * scope check, no zod/Ajv validation, no claims, no row-level security, no audit event.
 *
 * Protocol with the parent: one JSON line on stdout, `{"url": "http://127.0.0.1:<port>"}`, once
 * listening (or `{"error": "..."}`). The process stops on SIGTERM/SIGINT or when stdin closes
 * (the parent went away).
 */
import type { FastifyInstance } from "fastify";
import { uuidv7 } from "uuidv7";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import type { Db } from "../src/db/db";
import { openPostgres } from "../src/db/postgres";
import { ctxParam } from "../src/gateway/gateway-ctx";
import { newId } from "../src/lib/ids";
import { setToLabels } from "../src/lib/labels";

interface Row {
  id: string;
  app_id: string;
  form_id: string;
  submitter_id: string;
  payload: Record<string, unknown>;
  labels: string[];
  reviewer_id: string | null;
  created_at: Date;
}

// The same mapping as the governed repo (form-intake.repo.ts).
const toRecord = (r: Row) => ({
  id: r.id,
  app_id: r.app_id,
  form_id: r.form_id,
  submitter_id: r.submitter_id,
  payload: r.payload,
  labels: setToLabels(r.labels),
  assigned_reviewer: r.reviewer_id,
  created_at: r.created_at.toISOString(),
});

const LIST_SQL =
  "SELECT * FROM trellis.form_intake_submissions WHERE app_id = $1 AND submitter_id = $2 AND deleted_at IS NULL ORDER BY id DESC LIMIT $3";
const INSERT_SQL =
  "INSERT INTO trellis.form_intake_submissions (id, app_id, form_id, submitter_id, payload, created_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6)";

/** A submission as the bare and diagnostic write routes make and answer it. */
function newSubmission(
  appId: string,
  formId: string | undefined,
  submitter: string,
  payload: Record<string, unknown>,
) {
  return {
    id: uuidv7(),
    app_id: appId,
    form_id: formId ?? "default",
    submitter_id: submitter,
    payload,
    labels: {},
    assigned_reviewer: null,
    created_at: new Date().toISOString(),
  };
}

/** INSERT_SQL's parameters for a submission. */
const insertParams = (r: ReturnType<typeof newSubmission>) => [
  r.id,
  r.app_id,
  r.form_id,
  r.submitter_id,
  JSON.stringify(r.payload),
  r.created_at,
];

/** The baseline routes. Plain JSON in and out: no schemas, so no validation or zod serializer. */
function addBareRoutes(app: FastifyInstance, db: Db): void {
  app.get("/bench/bare/apps/:app/submissions", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const q = req.query as { submitter?: string; limit?: string };
    const limit = Math.min(Math.max(Number(q.limit ?? 50) || 50, 1), 200);
    if (!q.submitter) return reply.code(400).send({ error: "submitter is required" });
    // limit + 1, as the governed list does, to know whether there is a next page.
    const { rows } = await db.query<Row>(LIST_SQL, [appId, q.submitter, limit + 1]);
    const more = rows.length > limit;
    const items = (more ? rows.slice(0, limit) : rows).map(toRecord);
    const last = items.at(-1);
    const next_cursor =
      more && last ? Buffer.from(JSON.stringify({ id: last.id })).toString("base64url") : null;
    return { items, next_cursor };
  });

  app.post("/bench/bare/apps/:app/submissions", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as {
      form_id?: string;
      payload?: Record<string, unknown>;
      submitter?: string;
    };
    const header = req.headers["x-bench-submitter"];
    const submitter = (typeof header === "string" ? header : undefined) ?? body.submitter;
    if (!submitter || !body.payload) {
      return reply.code(400).send({ error: "payload and a submitter are required" });
    }
    const record = newSubmission(appId, body.form_id, submitter, body.payload);
    await db.query(INSERT_SQL, insertParams(record));
    return reply.code(201).send(record);
  });
}

/**
 * Diagnostic (BENCH_DIAG=1): the bare write plus the audit row a governed write records, in one
 * statement on the owner connection (no claims, no row-level security, no gateway function, no
 * Node-side governance; the row's rules trigger fires and the sequencer integrates the event, as
 * for a governed write). audited/bare is what two rows per write cost by themselves.
 */
const AUDITED_SQL = `WITH s AS (${INSERT_SQL} RETURNING id)
  INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
    resource_type, resource_id, app_id, token_id, policy_ids, outcome, request_id)
  SELECT $7, $6, $4, 'app_user', 'submission.create', 'submission', s.id::text, $2, 'tok_bench',
         ARRAY['owner-write.create'], 'allowed', $8 FROM s`;

function addAuditedRoute(app: FastifyInstance, db: Db): void {
  app.post("/bench/audited/apps/:app/submissions", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as { form_id?: string; payload?: Record<string, unknown> };
    const submitter = req.headers["x-bench-submitter"];
    if (typeof submitter !== "string" || !body.payload) {
      return reply.code(400).send({ error: "payload and x-bench-submitter are required" });
    }
    const record = newSubmission(appId, body.form_id, submitter, body.payload);
    await db.query(AUDITED_SQL, [...insertParams(record), newId("event"), req.id]);
    return reply.code(201).send(record);
  });
}

/**
 * The event-log baseline: the same two statements as `trellis.gw_event_log_append` (take the
 * app's next number, insert the event) as one statement on the owner's connection, without
 * claims, RLS, Cedar or the audit row.
 */
function addBareEventRoutes(app: FastifyInstance, db: Db): void {
  const APPEND_SQL = `WITH h AS (
      INSERT INTO trellis.event_log_heads AS h (app_id, last_seq) VALUES ($1, 1)
      ON CONFLICT (app_id) DO UPDATE SET last_seq = h.last_seq + 1 RETURNING h.last_seq)
    INSERT INTO trellis.event_log_events (app_id, seq, id, type, author_id, data, labels, created_at)
    SELECT $1, h.last_seq, $2, $3, $4, $5::jsonb, '{}', $6 FROM h RETURNING seq`;
  app.post("/bench/bare/apps/:app/events", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as { type?: string; data?: Record<string, unknown> };
    const author = req.headers["x-bench-submitter"];
    if (typeof author !== "string" || !body.type || !body.data) {
      return reply.code(400).send({ error: "type, data and x-bench-submitter are required" });
    }
    const id = uuidv7();
    const at = new Date().toISOString();
    const { rows } = await db.query<{ seq: number }>(APPEND_SQL, [
      appId,
      id,
      body.type,
      author,
      JSON.stringify(body.data),
      at,
    ]);
    return reply.code(201).send({
      id,
      app_id: appId,
      seq: Number(rows[0]?.seq),
      type: body.type,
      author_id: author,
      data: body.data,
      labels: {},
      created_at: at,
    });
  });
}

/** The directory baseline: the same INSERT as `trellis.gw_directory_create`, on the owner's connection. */
function addBareItemRoutes(app: FastifyInstance, db: Db): void {
  const INSERT = `INSERT INTO trellis.directory_items
      (id, app_id, owner_id, kind, attrs, labels, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, '{}', $6, $6)`;
  app.post("/bench/bare/apps/:app/items", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as { kind?: string; attrs?: Record<string, unknown> };
    const owner = req.headers["x-bench-submitter"];
    if (typeof owner !== "string" || !body.kind || !body.attrs) {
      return reply.code(400).send({ error: "kind, attrs and x-bench-submitter are required" });
    }
    const id = uuidv7();
    const at = new Date().toISOString();
    await db.query(INSERT, [id, appId, owner, body.kind, JSON.stringify(body.attrs), at]);
    return reply.code(201).send({
      id,
      app_id: appId,
      kind: body.kind,
      owner_id: owner,
      attrs: body.attrs,
      labels: {},
      created_at: at,
      updated_at: at,
    });
  });
}

/** The ttl-cache baseline: the same upsert as `trellis.gw_ttl_cache_put`, on the owner's connection. */
function addBareEntryRoutes(app: FastifyInstance, db: Db): void {
  const UPSERT = `INSERT INTO trellis.ttl_cache_entries AS e
      (app_id, key, owner_id, value, labels, expires_at, updated_at)
    VALUES ($1, $2, $3, $4::jsonb, '{}', $5, $6)
    ON CONFLICT (app_id, key) DO UPDATE SET owner_id = excluded.owner_id, value = excluded.value,
      labels = excluded.labels, expires_at = excluded.expires_at, updated_at = excluded.updated_at
    RETURNING (xmax = 0) AS created`;
  app.put("/bench/bare/apps/:app/entries/:key", async (req, reply) => {
    const { app: appId, key } = req.params as { app: string; key: string };
    const body = (req.body ?? {}) as { value?: Record<string, unknown>; ttl_seconds?: number };
    const owner = req.headers["x-bench-submitter"];
    if (typeof owner !== "string" || !body.value || !body.ttl_seconds) {
      return reply
        .code(400)
        .send({ error: "value, ttl_seconds and x-bench-submitter are required" });
    }
    const now = Date.now();
    const at = new Date(now).toISOString();
    const expires = new Date(now + body.ttl_seconds * 1000).toISOString();
    const { rows } = await db.query<{ created: boolean }>(UPSERT, [
      appId,
      key,
      owner,
      JSON.stringify(body.value),
      expires,
      at,
    ]);
    return reply.code(rows[0]?.created ? 201 : 200).send({
      key,
      app_id: appId,
      owner_id: owner,
      value: body.value,
      labels: {},
      expires_at: expires,
      updated_at: at,
    });
  });
}

/** The bookings baseline: the same INSERT as `trellis.gw_bookings_create`, on the owner's connection. */
function addBareBookingRoutes(app: FastifyInstance, db: Db): void {
  const INSERT = `INSERT INTO trellis.bookings (id, app_id, owner_id, resource, period, labels, created_at)
    VALUES ($1, $2, $3, $4, tstzrange($5::timestamptz, $6::timestamptz, '[)'), '{}', $7)`;
  app.post("/bench/bare/apps/:app/bookings", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as { resource?: string; starts_at?: string; ends_at?: string };
    const owner = req.headers["x-bench-submitter"];
    if (typeof owner !== "string" || !body.resource || !body.starts_at || !body.ends_at) {
      return reply
        .code(400)
        .send({ error: "resource, starts_at, ends_at and x-bench-submitter are required" });
    }
    const id = uuidv7();
    const at = new Date().toISOString();
    await db.query(INSERT, [id, appId, owner, body.resource, body.starts_at, body.ends_at, at]);
    return reply.code(201).send({
      id,
      app_id: appId,
      resource: body.resource,
      owner_id: owner,
      starts_at: body.starts_at,
      ends_at: body.ends_at,
      labels: {},
      created_at: at,
    });
  });
}

/**
 * The approval-queue baseline: the same INSERT as `trellis.gw_approval_queue_create`, on the
 * owner's connection (the state takes its default, `requested`).
 */
function addBareRequestRoutes(app: FastifyInstance, db: Db): void {
  const INSERT = `INSERT INTO trellis.approval_queue_requests
      (id, app_id, requester_id, assigned_reviewer, payload, labels, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, '{}', $6, $6)`;
  app.post("/bench/bare/apps/:app/requests", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as {
      payload?: Record<string, unknown>;
      assigned_reviewer?: string;
    };
    const requester = req.headers["x-bench-submitter"];
    if (typeof requester !== "string" || !body.payload || !body.assigned_reviewer) {
      return reply
        .code(400)
        .send({ error: "payload, assigned_reviewer and x-bench-submitter are required" });
    }
    const id = uuidv7();
    const at = new Date().toISOString();
    await db.query(INSERT, [
      id,
      appId,
      requester,
      body.assigned_reviewer,
      JSON.stringify(body.payload),
      at,
    ]);
    return reply.code(201).send({
      id,
      app_id: appId,
      requester_id: requester,
      assigned_reviewer: body.assigned_reviewer,
      payload: body.payload,
      state: "requested",
      labels: {},
      created_at: at,
      updated_at: at,
    });
  });
}

/**
 * Diagnostic routes (BENCH_DIAG=1): ungoverned on the Node side exactly like the bare routes, but
 * calling the same `trellis.gw_*` SQL functions as the gateway (claims, RLS, audit insert, one
 * statement). governed vs sqlfn is then the Node side of governance, sqlfn vs bare the SQL side.
 */
function addSqlFnRoutes(app: FastifyInstance, db: Db): void {
  // The same context the gateway builds (form-intake.routes.ts ctxOf), with fixed scopes.
  const ctxOf = (appId: string, sub: string, requestId: string, at: string) =>
    ctxParam({
      app_id: appId,
      sub,
      scopes: "create read",
      labels: "",
      env: "dev",
      app_env: "dev",
      blocks: "owner-read owner-write app-read",
      policy_ids: "owner-write.create",
      token_id: "tok_bench",
      event_id: newId("event"),
      request_id: requestId,
      at,
    });

  app.get("/bench/sqlfn/apps/:app/submissions", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const q = req.query as { submitter?: string; limit?: string };
    const limit = Math.min(Math.max(Number(q.limit ?? 50) || 50, 1), 200);
    if (!q.submitter) return reply.code(400).send({ error: "submitter is required" });
    const { rows } = await db.query<Row>(
      "SELECT * FROM trellis.gw_form_intake_list($1::trellis.gw_ctx, $2, $3::uuid, $4)",
      [ctxOf(appId, q.submitter, req.id, new Date().toISOString()), null, null, limit + 1],
    );
    const more = rows.length > limit;
    const items = (more ? rows.slice(0, limit) : rows).map(toRecord);
    const last = items.at(-1);
    const next_cursor =
      more && last ? Buffer.from(JSON.stringify({ id: last.id })).toString("base64url") : null;
    return { items, next_cursor };
  });

  app.post("/bench/sqlfn/apps/:app/submissions", async (req, reply) => {
    const { app: appId } = req.params as { app: string };
    const body = (req.body ?? {}) as { form_id?: string; payload?: Record<string, unknown> };
    const submitter = req.headers["x-bench-submitter"];
    if (typeof submitter !== "string" || !body.payload) {
      return reply.code(400).send({ error: "payload and x-bench-submitter are required" });
    }
    const record = newSubmission(appId, body.form_id, submitter, body.payload);
    await db.query(
      "SELECT trellis.gw_form_intake_create($1::trellis.gw_ctx, $2::uuid, $3, $4::jsonb, NULL)",
      [
        ctxOf(appId, submitter, req.id, record.created_at),
        record.id,
        record.form_id,
        JSON.stringify(record.payload),
      ],
    );
    return reply.code(201).send(record);
  });
}

const say = (msg: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(msg)}\n`);

async function main() {
  const config = parseConfig(process.env);
  if (!config.databaseUrl) throw new Error("bench server: DATABASE_URL is required");
  const db = await openPostgres(config.databaseUrl);
  let app: FastifyInstance;
  try {
    // BENCH_VERIFY_CACHE=0: the second server of the read bench, verifying every token in full.
    app = await buildApp({
      config,
      db,
      tuning: { tokenVerifyCache: process.env.BENCH_VERIFY_CACHE !== "0" },
    });
    addBareRoutes(app, db);
    addBareEventRoutes(app, db);
    addBareItemRoutes(app, db);
    addBareEntryRoutes(app, db);
    addBareBookingRoutes(app, db);
    addBareRequestRoutes(app, db);
    addSqlFnRoutes(app, db);
    addAuditedRoute(app, db);
    await app.listen({ host: "127.0.0.1", port: 0 });
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  const address = app.server.address();
  if (!address || typeof address !== "object") throw new Error("bench server: no address");

  let closing = false;
  const stop = async () => {
    if (closing) return;
    closing = true;
    try {
      await app.close();
      await db.close();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();

  say({ url: `http://127.0.0.1:${address.port}` });
}

main().catch((err: unknown) => {
  say({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
});
