import { createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Health } from "@trellis/contracts";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import { validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import type { Config } from "./config/config";
import type { Db } from "./db/db";
import { CORE_MIGRATIONS, migrate } from "./db/migrate";
import { approvalQueueRoutes } from "./gateway/approval-queue.routes";
import { bookingsRoutes } from "./gateway/bookings.routes";
import { directoryRoutes } from "./gateway/directory.routes";
import { eventLogRoutes } from "./gateway/event-log.routes";
import { formIntakeRoutes } from "./gateway/form-intake.routes";
import { gatewayAuth } from "./gateway/gateway-auth";
import { ttlCacheRoutes } from "./gateway/ttl-cache.routes";
import { adminAuth } from "./http/admin-auth";
import { anonymousContext } from "./http/context";
import { frameworkErrorHandler, installErrorHandling } from "./http/errors";
import { serializerCompiler } from "./http/serializer";
import { type Clock, systemClock } from "./lib/clock";
import { newId } from "./lib/ids";
import { loadAdminCredentials } from "./modules/admin/admin-credentials";
import { adminsRoutes } from "./modules/admin/admins.routes";
import { appsRoutes } from "./modules/apps/apps.routes";
import { appsService } from "./modules/apps/apps.service";
import { auditRoutes } from "./modules/audit/audit.routes";
import { auditService } from "./modules/audit/audit.service";
import { loadCatalog, TemplateError } from "./modules/catalog/catalog";
import { catalogRoutes } from "./modules/catalog/catalog.routes";
import { customTemplatesService } from "./modules/catalog/custom-templates";
import { customTemplatesRoutes } from "./modules/catalog/custom-templates.routes";
import { checkTables } from "./modules/catalog/template-check";
import { PolicyEngine } from "./modules/policy/engine";
import { activeCustomPolicies } from "./modules/policy/policy.repo";
import { policyRoutes } from "./modules/policy/policy.routes";
import { policyService } from "./modules/policy/policy.service";
import { portabilityRoutes } from "./modules/portability/portability.routes";
import { loadSigningKeys, resolveMasterKey } from "./modules/tokens/keys";
import { jwksRoutes, keysAdminRoutes } from "./modules/tokens/keys.routes";
import { revocationsService } from "./modules/tokens/revocations";
import { tokensRoutes } from "./modules/tokens/tokens.routes";
import { tokensService } from "./modules/tokens/tokens.service";
import { loadNoteSigner } from "./modules/transparency/note";
import { auditSinks } from "./modules/transparency/sinks";
import {
  publicTransparencyRoutes,
  transparencyRoutes,
  witnessRoutes,
} from "./modules/transparency/transparency.routes";
import {
  type TransparencyService,
  transparencyService,
} from "./modules/transparency/transparency.service";
import { loadCosigner, witnessService } from "./modules/transparency/witness";
import { upgradeRoutes } from "./modules/upgrades/upgrade.routes";

declare module "fastify" {
  interface FastifyInstance {
    /** The verifiable audit log (sequencer, checkpoints, proofs). */
    transparency: TransparencyService;
    /** The audit log's near-real-time copies (file, webhook). */
    auditSinks: ReturnType<typeof auditSinks>;
  }
}

import { upgradeService } from "./modules/upgrades/upgrade.service";

export { CORE_MIGRATIONS };
export const TEMPLATES_DIR = fileURLToPath(new URL("../../../templates", import.meta.url));

export interface AppDeps {
  config: Config;
  db: Db;
  clock?: Clock;
  /** Receives a newly generated admin token, once. */
  announceAdminToken?: (token: string) => void;
  /** Where the template catalog is read from (tests point it elsewhere). */
  templatesDir?: string;
  /** Benchmarks only: switch off the per-token verification cache to measure what it saves. */
  tuning?: { tokenVerifyCache?: boolean };
}

/**
 * The one composition root: migrate, then repos → services → routes. The caller owns `db`
 * (and closes it after `app.close()`).
 */
export async function buildApp({
  config,
  db,
  clock = systemClock,
  announceAdminToken = () => {},
  tuning = {},
  templatesDir = TEMPLATES_DIR,
}: AppDeps): Promise<FastifyInstance> {
  const catalog = loadCatalog(templatesDir);
  await migrate(db, [
    { scope: "core", dir: CORE_MIGRATIONS },
    ...[...catalog.values()].map((t) => ({
      scope: `template:${t.summary.id}`,
      dir: t.migrationsDir,
    })),
  ]);
  // A template whose tables break the safety rules (no app_id, RLS not forced, unbounded text)
  // stops start-up, after its migrations ran, with every problem named.
  const tableProblems = [];
  for (const t of catalog.values())
    tableProblems.push(...(await checkTables(db, t.manifest, t.migrationsDir)));
  if (tableProblems.length > 0) throw new TemplateError(tableProblems);

  const audit = auditService({ db, clock });
  const creds = await loadAdminCredentials(db, clock, config.adminToken, announceAdminToken);
  const masterKey = resolveMasterKey(config.masterKey, config.dataDir);
  const keys = await loadSigningKeys({
    db,
    masterKey,
    clock,
    audit,
    maxTtl: config.tokenMaxTtl,
  });
  const engine = new PolicyEngine();
  for (const t of catalog.values()) engine.addTemplate(t.summary.id, t.actions);
  // Approved custom templates join the catalog before any app is loaded.
  const custom = customTemplatesService({ db, clock, audit, engine, catalog });
  await custom.start();
  const apps = appsService({
    db,
    catalog,
    clock,
    audit,
    engine,
    activeCustomPolicies: (appId) => activeCustomPolicies(db, appId),
  });
  await apps.start();
  const revocations = revocationsService({ db, clock, audit });
  await revocations.start();
  const tokens = tokensService({
    db,
    keys,
    clock,
    audit,
    defaultTtl: config.tokenDefaultTtl,
    maxTtlByEnv: config.tokenMaxTtlByEnv,
    verifyCache: tuning.tokenVerifyCache ?? true,
  });
  const policy = policyService({ db, clock, audit, apps, tokens, engine });
  let logError: (obj: unknown, msg: string) => void = () => {};
  const transparency = transparencyService({
    db,
    clock,
    signer: await loadNoteSigner(db, clock, masterKey),
    mergeDelayMs: config.auditMergeDelayMs,
    anchorDir: config.auditAnchorDir,
    retentionDays: config.auditRetentionDays,
    audit,
    erasureKey: createHmac("sha256", masterKey)
      .update("trellis audit erasure subject tag v1")
      .digest(),
    forgetSubjectTx: revocations.forgetSubjectTx,
    witness: config.auditWitness,
    log: { error: (obj, msg) => logError(obj, msg) },
  });
  const upgrades = upgradeService({ db, catalog, audit, apps });

  const app = Fastify({
    logger: { level: config.logLevel },
    // One concise line per request comes from the onResponse hook below instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    genReqId: () => newId("request"),
    requestIdHeader: false, // never trust a caller's id: it lands in the audit log
    frameworkErrors: frameworkErrorHandler(audit),
  }).withTypeProvider<ZodTypeProvider>();
  logError = (obj, msg) => app.log.error(obj, msg);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: without this, Fastify would hand a text/plain body to the schema as a string.
  app.removeContentTypeParser("text/plain");

  app.decorateRequest("trellis", null as never);
  app.addHook("onRequest", async (req, reply) => {
    req.trellis = anonymousContext(req.id);
    reply.header("x-request-id", req.id);
  });
  // One line per request, registered only when the level would print it (no per-request cost otherwise).
  if (["info", "debug", "trace"].includes(config.logLevel)) {
    app.addHook("onResponse", async (req, reply) => {
      req.log.info(
        {
          method: req.method,
          path: req.url.split("?")[0],
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
        },
        "request",
      );
    });
  }
  installErrorHandling(app, audit);
  // In-flight requests finish first (Fastify waits for them), then queued audit events are written.
  app.addHook("onClose", async () => {
    await revocations.stop();
    await apps.stop();
    await custom.stop();
    await keys.stop();
    await audit.drain();
    await transparency.stop();
  });

  app.get("/healthz", { schema: { response: { 200: Health } } }, async () => ({
    status: "ok" as const,
    datastore: db.kind,
  }));

  await app.register(jwksRoutes, { keys });
  await app.register(publicTransparencyRoutes, { log: transparency });
  if (config.witnessLogs.length > 0) {
    const cosigner = await loadCosigner(
      db,
      clock,
      masterKey,
      `${transparency.signer.origin}/witness`,
    );
    await app.register(witnessRoutes, {
      witness: witnessService({ db, clock, cosigner, logs: config.witnessLogs }),
    });
  }

  await app.register(
    async (admin) => {
      admin.addHook("onRequest", adminAuth(creds));
      await admin.register(keysAdminRoutes, { keys });
      await admin.register(customTemplatesRoutes, { custom, audit });
      await admin.register(catalogRoutes, { catalog, audit });
      await admin.register(adminsRoutes, { db, clock, audit });
      await admin.register(portabilityRoutes, { db, catalog, clock, audit });
      await admin.register(upgradeRoutes, { upgrades });
      await admin.register(appsRoutes, {
        apps,
        audit,
        revokeAllTx: (tx, appId, now) => revocations.revokeAllTx(tx, appId, now),
      });
      await admin.register(policyRoutes, { policy, audit });
      await admin.register(tokensRoutes, { apps, tokens, revocations, audit });
      await admin.register(auditRoutes, { audit, db });
      await admin.register(transparencyRoutes, { log: transparency, audit, db });
    },
    { prefix: "/admin/v1" },
  );
  await app.register(
    async (gateway) => {
      gateway.addHook("onRequest", gatewayAuth({ tokens, apps, revocations }));
      await gateway.register(formIntakeRoutes, { db, clock, audit, engine });
      await gateway.register(eventLogRoutes, { db, clock, audit, engine });
      await gateway.register(directoryRoutes, { db, clock, audit, engine });
      await gateway.register(ttlCacheRoutes, { db, clock, audit, engine });
      await gateway.register(bookingsRoutes, { db, clock, audit, engine });
      await gateway.register(approvalQueueRoutes, { db, clock, audit, engine });
    },
    { prefix: "/api/v1" },
  );
  await transparency.start();
  app.decorate("transparency", transparency);
  const sinks = auditSinks({
    db,
    clock,
    file: config.auditSinkFile,
    webhook: config.auditWebhook,
    intervalMs: config.auditMergeDelayMs,
    log: {
      warn: (obj, msg) => app.log.warn(obj, msg),
      error: (obj, msg) => app.log.error(obj, msg),
    },
  });
  sinks.start();
  app.decorate("auditSinks", sinks);
  app.addHook("onClose", () => sinks.stop());
  return app;
}
