import { join, resolve } from "node:path";
import { parseCosignerKey, parseVerifierKey } from "@trellis/sdk/verify";
import { z } from "zod";

/**
 * Every setting Trellis reads, with its description and safe default. This is the only place
 * that reads `process.env` (main.ts passes it in); the rest of the code gets a typed `Config`.
 */
const VARIABLES = {
  TRELLIS_PORT: {
    describe: "TCP port the server listens on.",
    default: "8080",
    schema: z.coerce.number().int().min(1).max(65535),
  },
  TRELLIS_HOST: {
    describe: "Interface to bind. The default serves this machine only; use 0.0.0.0 deliberately.",
    default: "127.0.0.1",
    schema: z.string().min(1).max(255),
  },
  TRELLIS_DATA_DIR: {
    describe: "Folder for the embedded database, the master key file and the lock.",
    default: "./.trellis",
    schema: z.string().min(1),
  },
  DATABASE_URL: {
    describe: "PostgreSQL connection URL. Unset: the embedded PGlite database in the data dir.",
    default: undefined,
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must start with postgres:// or postgresql://")
      .optional(),
  },
  TRELLIS_DB_POOL_SIZE: {
    describe: "Connections to PostgreSQL per server process (ignored for the embedded database).",
    default: "10",
    schema: z.coerce.number().int().min(1).max(200),
  },
  TRELLIS_ADMIN_TOKEN: {
    describe:
      "Admin bearer token for the control plane (at least 32 characters). Unset: one is generated on first start, printed once, and stored only as a hash.",
    default: undefined,
    secret: true,
    schema: z.string().min(32, "must be at least 32 characters").max(512).optional(),
  },
  TRELLIS_MASTER_KEY: {
    describe:
      "Base64 of 32 random bytes that encrypts signing keys at rest. Unset: a key file (mode 0600) is created in the data dir. Set it when several servers share one PostgreSQL.",
    default: undefined,
    secret: true,
    schema: z
      .string()
      .refine((v) => Buffer.from(v, "base64").length === 32, "must be base64 of exactly 32 bytes")
      .optional(),
  },
  TRELLIS_TOKEN_DEFAULT_TTL: {
    describe:
      "Lifetime in seconds of an app token when the request names none (capped by its environment's maximum).",
    default: "3600",
    schema: z.coerce.number().int().min(60).max(86_400),
  },
  TRELLIS_TOKEN_MAX_TTL_DEV: {
    describe:
      "Longest lifetime in seconds of a dev token. There are no permanent tokens; renewing past this needs approval.",
    default: "28800",
    schema: z.coerce.number().int().min(60).max(86_400),
  },
  TRELLIS_TOKEN_MAX_TTL_STAGING: {
    describe: "Longest lifetime in seconds of a staging token.",
    default: "14400",
    schema: z.coerce.number().int().min(60).max(86_400),
  },
  TRELLIS_TOKEN_MAX_TTL_PROD: {
    describe: "Longest lifetime in seconds of a prod token (the shortest of the three).",
    default: "3600",
    schema: z.coerce.number().int().min(60).max(86_400),
  },
  TRELLIS_BODY_LIMIT: {
    describe: "Largest request body in bytes.",
    default: "65536",
    schema: z.coerce
      .number()
      .int()
      .min(1024)
      .max(10 * 1024 * 1024),
  },
  TRELLIS_LOG_LEVEL: {
    describe: "Log level: fatal, error, warn, info, debug, trace or silent.",
    default: "info",
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
  },
  TRELLIS_AUDIT_MERGE_DELAY_MS: {
    describe:
      "Longest time in milliseconds before a committed audit event is in the Merkle tree and a signed checkpoint.",
    default: "1000",
    schema: z.coerce.number().int().min(10).max(60_000),
  },
  TRELLIS_AUDIT_RETENTION_DAYS: {
    describe:
      "Days audit events are kept in full; older ones are pruned to their hashes (the tree still verifies). 0 keeps them forever. Separate from apps' data retention.",
    default: "2555",
    schema: z.coerce.number().int().min(0).max(36_500),
  },
  TRELLIS_AUDIT_SINK_FILE: {
    describe:
      "A file every audit event is appended to as NDJSON once it is in the Merkle tree (with its leaf index); resumes after its last complete line (a torn last line is cut off and rewritten); a file that does not end with this log's own line is refused and left untouched.",
    default: "",
    schema: z.string().max(1000),
  },
  TRELLIS_AUDIT_WEBHOOK_URL: {
    describe:
      "An http(s) URL that receives every audit event once it is in the tree, in batches, signed with HMAC-SHA256 (x-trellis-signature), retried until acknowledged (2xx).",
    default: "",
    schema: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]),
  },
  TRELLIS_AUDIT_WEBHOOK_SECRET: {
    describe:
      "The webhook's HMAC key (at least 32 characters); required with TRELLIS_AUDIT_WEBHOOK_URL.",
    default: undefined,
    secret: true,
    schema: z.string().min(32, "must be at least 32 characters").max(512).optional(),
  },
  TRELLIS_AUDIT_WITNESS_URL: {
    describe:
      "A witness (C2SP tlog-witness; another Trellis can be one) every checkpoint is sent to for a cosignature, e.g. https://witness.example.org.",
    default: "",
    schema: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]),
  },
  TRELLIS_AUDIT_WITNESS_KEY: {
    describe:
      "The witness's verifier key (<name>+<key id>+<base64 key>, type cosignature/v1); required with TRELLIS_AUDIT_WITNESS_URL.",
    default: "",
    schema: z.string().max(500),
  },
  TRELLIS_WITNESS_LOGS: {
    describe:
      "Verifier keys, comma-separated, of the logs this instance witnesses (POST /witness/add-checkpoint); empty: not a witness.",
    default: "",
    schema: z.string().max(20_000),
  },
  TRELLIS_AUDIT_ANCHOR_DIR: {
    describe:
      "Folder where every signed audit checkpoint is also written, one file each, never overwritten (default: <data dir>/audit-anchors).",
    default: "",
    schema: z.string().max(1000),
  },
} as const;

/** Read by the CLI and SDK tools, not by the server; known, so they do not stop start-up. */
const CLIENT_VARIABLES = new Set(["TRELLIS_URL", "TRELLIS_APP_TOKEN"]);

type Vars = typeof VARIABLES;
type Parsed = { [K in keyof Vars]: z.infer<Vars[K]["schema"]> };

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  dbPoolSize: number;
  adminToken: string | undefined;
  masterKey: Buffer | undefined;
  tokenDefaultTtl: number;
  /** Longest token lifetime per environment, in seconds. */
  tokenMaxTtlByEnv: Readonly<Record<"dev" | "staging" | "prod", number>>;
  /** The longest of them: how long a retired signing key must still verify. */
  tokenMaxTtl: number;
  bodyLimit: number;
  logLevel: Parsed["TRELLIS_LOG_LEVEL"];
  /** How long a committed audit event may wait for the tree and a checkpoint. */
  auditMergeDelayMs: number;
  /** Where checkpoints are anchored (a folder; one file per checkpoint). */
  auditAnchorDir: string;
  /** Days audit events are kept in full (0: forever). */
  auditRetentionDays: number;
  /** Near-real-time copies of the audit log. */
  auditSinkFile: string | undefined;
  auditWebhook: { url: string; secret: string } | undefined;
  /** The witness this log's checkpoints are sent to. */
  auditWitness: { url: string; key: string } | undefined;
  /** The logs this instance witnesses (their verifier keys). */
  witnessLogs: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * Parses the environment once. Unknown `TRELLIS_*` names and invalid values are collected and
 * thrown together, so one start-up tells about every problem.
 * @example parseConfig({ TRELLIS_PORT: "9090" }).port // 9090
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (name.startsWith("TRELLIS_") && !(name in VARIABLES) && !CLIENT_VARIABLES.has(name)) {
      problems.push(`${name} is not a Trellis setting (run \`trellis config\` for the list)`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(VARIABLES)) {
    const raw = env[name] === "" ? undefined : env[name];
    const result = spec.schema.safeParse(raw ?? spec.default);
    if (result.success) out[name] = result.data;
    else {
      const shown = "secret" in spec ? "(hidden)" : JSON.stringify(raw);
      problems.push(`${name}=${shown}: ${result.error.issues.map((i) => i.message).join("; ")}`);
    }
  }
  const p = out as Parsed;
  if (problems.length === 0 && p.TRELLIS_TOKEN_MAX_TTL_PROD > p.TRELLIS_TOKEN_MAX_TTL_DEV) {
    problems.push(
      "TRELLIS_TOKEN_MAX_TTL_PROD must not exceed TRELLIS_TOKEN_MAX_TTL_DEV (prod tokens live shorter)",
    );
  }
  if (problems.length === 0 && p.TRELLIS_AUDIT_WEBHOOK_URL && !p.TRELLIS_AUDIT_WEBHOOK_SECRET)
    problems.push("TRELLIS_AUDIT_WEBHOOK_URL needs TRELLIS_AUDIT_WEBHOOK_SECRET (the HMAC key)");
  if (
    problems.length === 0 &&
    Boolean(p.TRELLIS_AUDIT_WITNESS_URL) !== Boolean(p.TRELLIS_AUDIT_WITNESS_KEY)
  )
    problems.push("TRELLIS_AUDIT_WITNESS_URL and TRELLIS_AUDIT_WITNESS_KEY go together");
  // Keys are checked here, so a typo stops start-up with its name instead of deep inside.
  if (problems.length === 0 && p.TRELLIS_AUDIT_WITNESS_KEY) {
    try {
      parseCosignerKey(p.TRELLIS_AUDIT_WITNESS_KEY);
    } catch (err) {
      problems.push(`TRELLIS_AUDIT_WITNESS_KEY: ${(err as Error).message}`);
    }
  }
  for (const k of problems.length === 0 ? p.TRELLIS_WITNESS_LOGS.split(",") : []) {
    if (!k.trim()) continue;
    try {
      parseVerifierKey(k.trim());
    } catch (err) {
      problems.push(`TRELLIS_WITNESS_LOGS: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    port: p.TRELLIS_PORT,
    host: p.TRELLIS_HOST,
    dataDir: resolve(p.TRELLIS_DATA_DIR),
    databaseUrl: p.DATABASE_URL,
    dbPoolSize: p.TRELLIS_DB_POOL_SIZE,
    adminToken: p.TRELLIS_ADMIN_TOKEN,
    masterKey: p.TRELLIS_MASTER_KEY ? Buffer.from(p.TRELLIS_MASTER_KEY, "base64") : undefined,
    tokenDefaultTtl: p.TRELLIS_TOKEN_DEFAULT_TTL,
    tokenMaxTtlByEnv: {
      dev: p.TRELLIS_TOKEN_MAX_TTL_DEV,
      staging: p.TRELLIS_TOKEN_MAX_TTL_STAGING,
      prod: p.TRELLIS_TOKEN_MAX_TTL_PROD,
    },
    tokenMaxTtl: Math.max(
      p.TRELLIS_TOKEN_MAX_TTL_DEV,
      p.TRELLIS_TOKEN_MAX_TTL_STAGING,
      p.TRELLIS_TOKEN_MAX_TTL_PROD,
    ),
    bodyLimit: p.TRELLIS_BODY_LIMIT,
    logLevel: p.TRELLIS_LOG_LEVEL,
    auditMergeDelayMs: p.TRELLIS_AUDIT_MERGE_DELAY_MS,
    auditAnchorDir: resolve(
      p.TRELLIS_AUDIT_ANCHOR_DIR || join(p.TRELLIS_DATA_DIR, "audit-anchors"),
    ),
    auditRetentionDays: p.TRELLIS_AUDIT_RETENTION_DAYS,
    auditSinkFile: p.TRELLIS_AUDIT_SINK_FILE ? resolve(p.TRELLIS_AUDIT_SINK_FILE) : undefined,
    auditWebhook:
      p.TRELLIS_AUDIT_WEBHOOK_URL && p.TRELLIS_AUDIT_WEBHOOK_SECRET
        ? { url: p.TRELLIS_AUDIT_WEBHOOK_URL, secret: p.TRELLIS_AUDIT_WEBHOOK_SECRET }
        : undefined,
    auditWitness:
      p.TRELLIS_AUDIT_WITNESS_URL && p.TRELLIS_AUDIT_WITNESS_KEY
        ? { url: p.TRELLIS_AUDIT_WITNESS_URL.replace(/\/+$/, ""), key: p.TRELLIS_AUDIT_WITNESS_KEY }
        : undefined,
    witnessLogs: p.TRELLIS_WITNESS_LOGS.split(",")
      .map((k) => k.trim())
      .filter(Boolean),
  };
}

/** Rows for `trellis config`: name, default, description, and the current value (secrets hidden). */
export function describeConfig(env: Record<string, string | undefined>) {
  return Object.entries(VARIABLES).map(([name, spec]) => ({
    name,
    default: spec.default ?? "(unset)",
    current: env[name] === undefined ? "" : "secret" in spec ? "(set, hidden)" : String(env[name]),
    describe: spec.describe,
  }));
}
