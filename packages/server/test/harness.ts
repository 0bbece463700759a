import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance, InjectOptions } from "fastify";
import pg from "pg";
import { describe } from "vitest";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import type { DatastoreKind, Db, Queryable } from "../src/db/db";
import { openPglite } from "../src/db/pglite";
import { openPostgres } from "../src/db/postgres";
import { ctxParam } from "../src/gateway/gateway-ctx";
import type { Clock } from "../src/lib/clock";
import { noteSignerFromKey } from "../src/modules/transparency/note";

/** The datastores every datastore test runs on: PGlite always, PostgreSQL when configured. */
export const DATASTORES: DatastoreKind[] = process.env.TEST_DATABASE_URL
  ? ["pglite", "postgres"]
  : ["pglite"];

export interface FreshDb {
  db: Db;
  /** A connection URL for the PostgreSQL database (undefined on PGlite). */
  url?: string;
  drop(): Promise<void>;
}

/** A new empty datastore: in-memory PGlite, or a new database on the test PostgreSQL server. */
export async function freshDb(
  kind: DatastoreKind,
  opts: { owner?: string } = {},
): Promise<FreshDb> {
  if (kind === "pglite") {
    const db = await openPglite();
    return { db, drop: () => db.close() };
  }
  const base = process.env.TEST_DATABASE_URL as string;
  const name = `trellis_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client(base);
  await admin.connect();
  if (opts.owner) {
    // A deployment's owner: may log in and create roles (for trellis_gateway), nothing more.
    await admin.query(`DO $$ BEGIN
      CREATE ROLE ${opts.owner} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
    await admin.query(`CREATE DATABASE ${name} OWNER ${opts.owner}`);
  } else {
    await admin.query(`CREATE DATABASE ${name}`);
  }
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  if (opts.owner) url.username = opts.owner;
  const db = await openPostgres(url.toString(), 5);
  return {
    db,
    url: url.toString(),
    async drop() {
      await db.close();
      const c = new pg.Client(base);
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A clock tests can move. */
export class TestClock implements Clock {
  constructor(public t = Date.now()) {}
  now() {
    return new Date(this.t);
  }
  advance(seconds: number) {
    this.t += seconds * 1000;
  }
}

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdefghijklmnop";

export interface TestApp {
  app: FastifyInstance;
  db: Db;
  clock: TestClock;
  dataDir: string;
  /** The test database's URL on PostgreSQL (undefined on PGlite). */
  url?: string;
  config: ReturnType<typeof parseConfig>;
  close(): Promise<void>;
  /** Listens on a free loopback port and returns the base URL (for clients that speak HTTP). */
  listen(): Promise<string>;
  /** app.inject with JSON in and out, as the admin unless `token` is given. */
  call(opts: {
    method: InjectOptions["method"];
    url: string;
    body?: unknown;
    token?: string | null;
    headers?: Record<string, string>;
    payload?: string;
    // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies as loose JSON and assert on them
  }): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
}

export async function startTestApp(
  kind: DatastoreKind,
  env: Record<string, string> = {},
  opts: { dbOwner?: string } = {},
): Promise<TestApp> {
  const fresh = await freshDb(kind, { owner: opts.dbOwner });
  const dataDir = mkdtempSync(join(tmpdir(), "trellis-test-"));
  const config = parseConfig({
    TRELLIS_ADMIN_TOKEN: ADMIN_TOKEN,
    TRELLIS_MASTER_KEY: randomBytes(32).toString("base64"),
    TRELLIS_DATA_DIR: dataDir,
    TRELLIS_LOG_LEVEL: "silent",
    ...env,
  });
  const clock = new TestClock();
  const app = await buildApp({ config, db: fresh.db, clock });
  return {
    app,
    db: fresh.db,
    clock,
    dataDir,
    url: fresh.url,
    config,
    async close() {
      await app.close();
      await fresh.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
    async listen() {
      await app.listen({ port: 0, host: "127.0.0.1" });
      const address = app.server.address();
      if (!address || typeof address === "string") throw new Error("no TCP address");
      return `http://127.0.0.1:${address.port}`;
    },
    async call({ method, url, body, token = ADMIN_TOKEN, headers = {}, payload }) {
      const res = await app.inject({
        method,
        url,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined || payload !== undefined
            ? { "content-type": "application/json" }
            : {}),
          ...headers,
        },
        payload: payload ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
      let parsed: unknown;
      try {
        parsed = res.body ? JSON.parse(res.body) : undefined;
      } catch {
        parsed = res.body;
      }
      return { status: res.statusCode, body: parsed, headers: res.headers };
    },
  };
}

export const SCHEMA = {
  type: "object",
  required: ["title"],
  properties: {
    title: { type: "string", minLength: 1, maxLength: 120 },
    priority: { enum: ["low", "high"] },
    email: { type: "string", format: "email" },
  },
};

/** Creates a form-intake app through the API and returns its id. */
export async function createApp(
  t: TestApp,
  name = "Requests",
  extra: { environment?: string; policy_blocks?: string[] } = {},
): Promise<string> {
  const res = await t.call({
    method: "POST",
    url: "/admin/v1/apps",
    body: {
      name,
      template: "form-intake",
      owners: ["owner@example.com"],
      payload_schema: SCHEMA,
      ...extra,
    },
  });
  if (res.status !== 201) throw new Error(`createApp: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

/** Issues a token through the API and returns it. */
export async function issueToken(
  t: TestApp,
  appId: string,
  subject: string,
  scopes: string[],
  ttl?: number,
): Promise<string> {
  const res = await t.call({
    method: "POST",
    url: `/admin/v1/apps/${appId}/tokens`,
    body: { subject, scopes, ...(ttl ? { ttl_seconds: ttl } : {}) },
  });
  if (res.status !== 201) throw new Error(`issueToken: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token;
}

/** Audit events of one request, read directly from the table. */
export async function auditFor(db: Db, requestId: string) {
  // biome-ignore lint/suspicious/noExplicitAny: rows are asserted field by field
  const { rows } = await db.query<Record<string, any>>(
    "SELECT * FROM trellis.audit_events WHERE request_id = $1 ORDER BY seq",
    [requestId],
  );
  return rows;
}

/**
 * Signs a token with the server's current private key (unsealed with the test's master key):
 * for tests that must show a refusal is not about the signature.
 */
export async function signAsServer(
  t: TestApp,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const { CompactSign, importJWK } = await import("jose");
  const { open } = await import("../src/lib/secrets");
  const { rows } = await t.db.query<{ kid: string; private_jwk_sealed: string }>(
    "SELECT kid, private_jwk_sealed FROM trellis.signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1",
  );
  const row = rows[0] as { kid: string; private_jwk_sealed: string };
  const key = await importJWK(
    JSON.parse(open(t.config.masterKey as Buffer, row.private_jwk_sealed, row.kid)),
    "EdDSA",
  );
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: "EdDSA", kid: row.kid, typ: "JWT", ...header })
    .sign(key);
}

/**
 * `describe` where PostgreSQL is configured, nothing elsewhere (as the datastore matrix does):
 * for tests of several servers sharing one database; PGlite is one process by design.
 */
export const describeOnPostgres: (name: string, fn: () => void) => void = DATASTORES.includes(
  "postgres",
)
  ? describe
  : () => {};

/** A second server on the same PostgreSQL database as `t`, with its own connections. */
export async function startSecondServer(
  t: TestApp,
): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const db = await openPostgres(t.url as string, 2);
  const app = await buildApp({ config: t.config, db, clock: t.clock });
  return {
    app,
    async close() {
      await app.close();
      await db.close();
    },
  };
}

/** The decoded header or payload of a JWT (tests only: no verification). */
export const jwtPart = (token: string, part: "header" | "payload"): Record<string, unknown> =>
  JSON.parse(
    Buffer.from(token.split(".")[part === "header" ? 0 : 1] as string, "base64url").toString(),
  );

/** The claims a gateway function sets (see trellis.set_claims); blocks default to form-intake's. */
export interface GatewayClaims {
  app?: string;
  sub?: string;
  scopes?: string;
  labels?: string;
  env?: string;
  appEnv?: string;
  blocks?: string;
}
export const DEFAULT_BLOCKS = "owner-read owner-write app-read";

/** Runs fn as trellis_gateway with the given claims, in a transaction that is rolled back. */
export async function asGateway<T>(
  db: Db,
  claims: GatewayClaims,
  fn: (q: Queryable) => Promise<T>,
): Promise<T> {
  const rollback = new Error("rollback");
  let out: T | undefined;
  try {
    await db.transaction(async (tx) => {
      await tx.query("SET LOCAL ROLE trellis_gateway");
      await tx.query("SELECT trellis.set_claims($1::trellis.gw_ctx)", [
        ctxParam({
          app_id: claims.app ?? "",
          sub: claims.sub ?? "",
          scopes: claims.scopes ?? "",
          labels: claims.labels ?? "",
          env: claims.env ?? "dev",
          app_env: claims.appEnv ?? "dev",
          blocks: claims.blocks ?? DEFAULT_BLOCKS,
          policy_ids: "",
          token_id: "",
          event_id: "",
          request_id: "",
          at: new Date(0).toISOString(),
        }),
      ]);
      out = await fn(tx);
      throw rollback;
    });
  } catch (err) {
    if (err !== rollback) throw err;
  }
  return out as T;
}

/** A checkpoint signer with a fresh Ed25519 key (another log's, or a forger's). */
export function newNoteSigner(origin = "trellis-audit/test") {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url");
  return noteSignerFromKey(origin, privateKey, new Uint8Array(raw));
}

/** The whole log as `dir/log.ndjson` (GET /admin/v1/audit/log-export), for verifyLogFile. */
export async function exportLogFile(
  t: TestApp,
  dir: string,
): Promise<{ file: string; body: string }> {
  const res = await t.app.inject({
    method: "GET",
    url: "/admin/v1/audit/log-export",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  if (res.statusCode !== 200) throw new Error(`log export answered ${res.statusCode}`);
  const file = join(dir, "log.ndjson");
  writeFileSync(file, res.body);
  return { file, body: res.body };
}

/** Runs SQL as a malicious owner: the table's append-only triggers switched off for the change. */
export const tamper = (db: Db, table: string, fn: (q: Queryable) => Promise<unknown>) =>
  db.transaction(async (tx) => {
    await tx.query(`ALTER TABLE trellis.${table} DISABLE TRIGGER USER`);
    await fn(tx);
    await tx.query(`ALTER TABLE trellis.${table} ENABLE TRIGGER USER`);
  });

/**
 * `n` events written straight into the log (as the gateway writes them, from 50 actors; ids
 * numbered from `first`) and integrated: a log large enough for many pages in a second or two.
 * The sequencer is stopped first and stays stopped, as `audit verify` runs.
 */
export async function fillAuditLog(t: TestApp, n: number, first = 1): Promise<void> {
  await t.app.transparency.stop();
  await t.db.query(
    `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
       resource_type, resource_id, app_id, token_id, policy_ids, outcome, request_id)
     SELECT 'evt_f' || g, now(), 'user-' || (g % 50), 'app_user', 'submission.create',
            'submission', md5(g::text), 'app_f', 'tok_f', ARRAY['owner-write.create'],
            'allowed', 'req_f' || g
       FROM generate_series($2::int, $2::int + $1::int - 1) g`,
    [n, first],
  );
  for (;;) if (!(await t.app.transparency.tick())) break;
}
