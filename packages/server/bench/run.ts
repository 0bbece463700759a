/**
 * `npm run bench`: governed gateway throughput as a ratio of an ungoverned route doing the same
 * query in the same server process, on PostgreSQL. See bench/README.md.
 *
 * The parent (this file) owns a fresh database and the load generator (autocannon); the server
 * under test runs in a child process (bench/server.ts).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import pg from "pg";
import { auditLogReport, benchAuditLog } from "./audit-log";
import { benchPolicy, type PolicyBenchResult } from "./policy";

// ── knobs ──────────────────────────────────────────────────────────────────────────────────
function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name}=${raw}: must be an integer between ${min} and ${max}`);
  }
  return n;
}

const BASE_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";
const DURATION = intEnv("BENCH_DURATION", 4, 1, 600);
const ROUNDS = intEnv("BENCH_ROUNDS", 5, 1, 100);
const WARMUP_ROUNDS = intEnv("BENCH_WARMUP_ROUNDS", 1, 0, 10);
const CONNECTIONS = intEnv("BENCH_CONNECTIONS", 16, 1, 1000);
const SEED = intEnv("BENCH_SEED", 200, 51, 100_000);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || "warn";
const OPS = (process.env.BENCH_OPS || "read,write,append,item,entry,booking,request")
  .split(",")
  .map((s) => s.trim());
/** Diagnostic: a `synchronous_commit` value set on the bench database (e.g. `off`). */
const SYNC_COMMIT = process.env.BENCH_SYNCHRONOUS_COMMIT || undefined;
const JSON_OUT = process.env.BENCH_JSON || undefined;
/** Milliseconds per round and variant of the in-process policy decision bench. */
const POLICY_MS = intEnv("BENCH_POLICY_MS", 1000, 50, 60_000);
/** Events the audit-log bench fills its log to (verify rate, proof latency); 0 skips it. */
const AUDIT_EVENTS = intEnv("BENCH_AUDIT_EVENTS", 1_000_000, 0, 50_000_000);
const VERIFY_RUNS = intEnv("BENCH_VERIFY_RUNS", 3, 1, 20);
/** Diagnostic: also measure `sqlfn`, the gateway's SQL function called from an ungoverned route. */
const DIAG = process.env.BENCH_DIAG === "1";
/**
 * Variants per operation. Reads also run `uncached`: the same governed route on a second server
 * whose token verification cache is off (every request verifies the JWT signature in full).
 */
const variantsFor = (op: Op): Variant[] => [
  "governed",
  ...(op === "read" ? (["uncached"] as const) : []),
  "bare",
  ...(DIAG && (op === "read" || op === "write") ? (["sqlfn"] as const) : []),
  ...(DIAG && op === "write" ? (["audited"] as const) : []),
];

/** append, item, entry, booking, request: one governed write per template (issue 4: each ≥ 0.5). */
const TARGETS: Record<Op, number> = {
  read: 0.7,
  write: 0.6,
  append: 0.5,
  item: 0.5,
  entry: 0.5,
  booking: 0.5,
  request: 0.5,
};
const ADMIN_TOKEN = "bench-admin-token-0123456789abcdefghijklmnopqrstuvwxyz";
/** One master key for every server of the run: they share the database and its signing keys. */
const MASTER_KEY = randomBytes(32).toString("base64");
const SUBJECT = "bench-user";
/** The reviewer named by every approval request (not SUBJECT: nobody reviews their own). */
const REVIEWER = "rita";
const FORM_ID = "default";
const LIMIT = 50;

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../../..");
const SERVER = join(HERE, "server.ts");

type Op = "read" | "write" | "append" | "item" | "entry" | "booking" | "request";
type Variant = "governed" | "uncached" | "bare" | "sqlfn" | "audited";

for (const op of OPS) {
  if (!["read", "write", "append", "item", "entry", "booking", "request"].includes(op))
    throw new Error(`BENCH_OPS: unknown operation "${op}"`);
}
if (SYNC_COMMIT && !/^(on|off|local|remote_write|remote_apply)$/.test(SYNC_COMMIT)) {
  throw new Error(`BENCH_SYNCHRONOUS_COMMIT=${SYNC_COMMIT}: not a synchronous_commit value`);
}

const log = (msg: string) => process.stderr.write(`${msg}\n`);

// ── resources and cleanup ──────────────────────────────────────────────────────────────────
const dbName = `trellis_bench_${randomBytes(6).toString("hex")}`;
const dbUrl = (() => {
  const u = new URL(BASE_URL);
  u.pathname = `/${dbName}`;
  return u.toString();
})();
/** Where the base URL's password is, it is not printed. */
const shownUrl = (() => {
  const u = new URL(BASE_URL);
  if (u.password) u.password = "***";
  return u.toString();
})();

let dbCreated = false;
const children: ChildProcess[] = [];
let dataDir: string | undefined;
let cleaning: Promise<void> | undefined;

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

async function stopChildren(): Promise<void> {
  await Promise.all(children.map(stopChild));
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((done) => c.once("exit", () => done()));
  c.kill("SIGTERM");
  const timer = setTimeout(() => c.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** Stops the server, drops the database, removes the temp dir. Safe to call more than once. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopChildren().catch((err) => log(`bench: could not stop a server: ${err}`));
    if (dbCreated) {
      try {
        await withClient(BASE_URL, (c) =>
          c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`),
        );
        log(`bench: dropped database ${dbName}`);
      } catch (err) {
        log(`bench: could not drop database ${dbName} (drop it by hand): ${err}`);
      }
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const [sig, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
  ["SIGHUP", 129],
] as const) {
  process.once(sig, () => {
    log(`\nbench: ${sig}, cleaning up…`);
    cleanup().finally(() => process.exit(code));
  });
}

// ── server child ───────────────────────────────────────────────────────────────────────────
interface Server {
  url: string;
  pid: number | undefined;
}

async function startServer(extraEnv: Record<string, string> = {}): Promise<Server> {
  dataDir ??= mkdtempSync(join(tmpdir(), "trellis-bench-"));
  const env: Record<string, string> = {};
  // The child parses its environment like the real server: keep none of the caller's Trellis
  // settings, so the run depends only on what is set here.
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("TRELLIS_") && k !== "DATABASE_URL") env[k] = v;
  }
  Object.assign(env, {
    DATABASE_URL: dbUrl,
    TRELLIS_ADMIN_TOKEN: ADMIN_TOKEN,
    TRELLIS_MASTER_KEY: MASTER_KEY,
    TRELLIS_LOG_LEVEL: LOG_LEVEL,
    TRELLIS_DATA_DIR: dataDir,
    // The audit sequencer runs as in production unless a run asks otherwise (to measure it).
    ...(process.env.BENCH_AUDIT_MERGE_DELAY_MS
      ? { TRELLIS_AUDIT_MERGE_DELAY_MS: process.env.BENCH_AUDIT_MERGE_DELAY_MS }
      : {}),
    ...extraEnv,
  });
  const tsx = import.meta.resolve("tsx");
  // BENCH_SERVER_PROFILE_DIR: a V8 CPU profile of each bench server, written when it stops.
  const prof = process.env.BENCH_SERVER_PROFILE_DIR;
  const c = spawn(
    process.execPath,
    [...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : []), "--import", tsx, SERVER],
    {
      cwd: ROOT,
      env,
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  children.push(c);
  return await new Promise<Server>((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error("the bench server did not start within 60 s")),
      60_000,
    );
    let ready = false;
    c.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (!ready)
        fail(
          new Error(`the bench server exited before it was ready (code ${code}, signal ${signal})`),
        );
      else if (!cleaning)
        log(`bench: the server exited unexpectedly (code ${code}, signal ${signal})`);
    });
    createInterface({ input: c.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      let msg: { url?: unknown; error?: unknown } | undefined;
      try {
        msg = JSON.parse(line);
      } catch {}
      if (!ready && typeof msg?.url === "string") {
        ready = true;
        clearTimeout(timer);
        done({ url: msg.url, pid: c.pid });
      } else if (!ready && typeof msg?.error === "string") {
        clearTimeout(timer);
        fail(new Error(`the bench server failed to start:\n${msg.error}`));
      } else {
        log(`[server] ${line}`); // the server's own log lines (warn and above by default)
      }
    });
  });
}

// ── HTTP helpers ───────────────────────────────────────────────────────────────────────────
async function call<T>(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string>; expect: number },
): Promise<T> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  if (res.status !== opts.expect) {
    throw new Error(
      `${method} ${path}: expected ${opts.expect}, got ${res.status}: ${text.slice(0, 500)}`,
    );
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

interface Target {
  server: Server;
  method: "GET" | "POST" | "PUT";
  path: string;
  /** Optional: spread requests over these paths in turn (path is the first). */
  paths?: string[];
  headers: Record<string, string>;
  body?: string;
  /** Optional: a new body for every request (instead of `body`). */
  bodies?: () => string;
}

interface RoundResult {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  bytesPerResponse: number;
  /** CPU time per request of the server process and of its PostgreSQL backends, in µs (Linux, local PostgreSQL only). */
  serverCpuUs: number | null;
  dbCpuUs: number | null;
}

// ── CPU accounting ─────────────────────────────────────────────────────────────────────────
// Throughput on a small shared machine moves with everything else running on it; CPU time per
// request does much less, so it is reported beside req/s to tell where a difference comes from.
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process in µs, or undefined when /proc does not have it. */
function cpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which is in parentheses and may contain spaces).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

const LOCAL_PG = ["127.0.0.1", "localhost", "::1", "[::1]", ""].includes(
  new URL(BASE_URL).hostname,
);

/** Samples the CPU time of the server child and of the PostgreSQL backends on the bench database. */
class CpuMeter {
  private constructor(private readonly client: pg.Client | undefined) {}

  static async open(): Promise<CpuMeter> {
    if (!LOCAL_PG || !existsSync("/proc/self/stat")) return new CpuMeter(undefined);
    const client = new pg.Client({ connectionString: BASE_URL });
    await client.connect();
    return new CpuMeter(client);
  }

  async sample(
    pid: number | undefined,
  ): Promise<{ server: number | undefined; db: Map<number, number> }> {
    const server = pid ? cpuUs(pid) : undefined;
    const db = new Map<number, number>();
    if (this.client) {
      const { rows } = await this.client.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1",
        [dbName],
      );
      for (const { pid } of rows) {
        const us = cpuUs(pid);
        if (us !== undefined) db.set(pid, us);
      }
    }
    return { server, db };
  }

  static delta(
    a: Awaited<ReturnType<CpuMeter["sample"]>>,
    b: Awaited<ReturnType<CpuMeter["sample"]>>,
  ) {
    const server =
      a.server !== undefined && b.server !== undefined ? b.server - a.server : undefined;
    let db: number | undefined;
    if (b.db.size > 0) {
      db = 0;
      for (const [pid, us] of b.db) db += us - (a.db.get(pid) ?? 0);
    }
    return { server, db };
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => {});
  }
}

let meter: CpuMeter | undefined;

async function measure(t: Target, duration: number): Promise<RoundResult> {
  const base = t.server.url;
  const before = await meter?.sample(t.server.pid);
  // A target with several paths spreads its requests over them in turn (one hot row would
  // measure lock waits, not governance).
  let next = 0;
  const { paths, bodies } = t;
  const r = await autocannon({
    url: `${base}${t.path}`,
    method: t.method,
    headers: t.headers,
    body: t.body,
    connections: CONNECTIONS,
    duration,
    ...(paths || bodies
      ? {
          requests: [
            {
              setupRequest: (req: autocannon.Request) => ({
                ...req,
                ...(paths ? { path: paths[next++ % paths.length] ?? t.path } : {}),
                ...(bodies ? { body: bodies() } : {}),
              }),
            },
          ],
        }
      : {}),
  });
  const bad = r.non2xx + r.errors + r.timeouts + (r.resets ?? 0) + (r.mismatches ?? 0);
  if (bad > 0 || r["2xx"] === 0) {
    let sample = "";
    try {
      const res = await fetch(`${base}${t.path}`, {
        method: t.method,
        headers: t.headers,
        body: t.bodies?.() ?? t.body,
      });
      sample = ` A sample request now answers ${res.status}: ${(await res.text()).slice(0, 300)}`;
    } catch (err) {
      sample = ` A sample request now fails: ${err}`;
    }
    throw new Error(
      `${t.method} ${t.path}: ${r["2xx"]} 2xx, ${r.non2xx} non-2xx (status counts ${JSON.stringify(r.statusCodeStats)}), ` +
        `${r.errors} errors, ${r.timeouts} timeouts, ${r.resets ?? 0} resets.${sample}`,
    );
  }
  const after = await meter?.sample(t.server.pid);
  const cpu =
    before && after ? CpuMeter.delta(before, after) : { server: undefined, db: undefined };
  const perRequest = (us: number | undefined) => (us === undefined ? null : us / r["2xx"]);
  return {
    rps: r["2xx"] / r.duration,
    requests: r["2xx"],
    p50: r.latency.p50,
    p99: r.latency.p99,
    bytesPerResponse: r.throughput.total / Math.max(1, r.requests.total),
    serverCpuUs: perRequest(cpu.server),
    dbCpuUs: perRequest(cpu.db),
  };
}

// ── statistics ─────────────────────────────────────────────────────────────────────────────
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function medianOrNull(xs: (number | null)[]): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length === xs.length && known.length > 0 ? median(known) : null;
}

interface VariantSummary {
  medianRps: number;
  p50: number;
  p99: number;
  bytesPerResponse: number;
  serverCpuUs: number | null;
  dbCpuUs: number | null;
}

interface OpResult {
  op: Op;
  variants: Variant[];
  rounds: Partial<Record<Variant, RoundResult>>[];
  summary: Partial<Record<Variant, VariantSummary>>;
  /** governed / bare */
  ratioOfMedians: number;
  medianOfRatios: number;
  /** Diagnostic variant (BENCH_DIAG=1): sqlfn / bare, of medians. */
  sqlfnRatio: number | null;
  /** Diagnostic variant (BENCH_DIAG=1, writes): audited / bare, of medians. */
  auditedRatio: number | null;
  /** Reads: uncached / bare, of medians (governed without the token verification cache). */
  uncachedRatio: number | null;
  target: number;
  pass: boolean;
}

const rpsOf = (r: Partial<Record<Variant, RoundResult>>, v: Variant) => (r[v] as RoundResult).rps;

async function benchOp(op: Op, targets: Record<Variant, Target>): Promise<OpResult> {
  const VARIANTS = variantsFor(op);
  for (let w = 0; w < WARMUP_ROUNDS; w++) {
    log(`bench: ${op} warm-up ${w + 1}/${WARMUP_ROUNDS}`);
    for (const v of VARIANTS) await measure(targets[v], DURATION);
  }
  const rounds: OpResult["rounds"] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate which variant goes first, so a drift over the run does not favour one of them.
    const order = VARIANTS.map((_, k) => VARIANTS[(k + i) % VARIANTS.length] as Variant);
    const got: Partial<Record<Variant, RoundResult>> = {};
    for (const v of order) got[v] = await measure(targets[v], DURATION);
    rounds.push(got);
    log(
      `bench: ${op} round ${i + 1}/${ROUNDS}: ` +
        VARIANTS.map((v) => `${v} ${rpsOf(got, v).toFixed(0)} req/s`).join(", ") +
        `, governed/bare ${(rpsOf(got, "governed") / rpsOf(got, "bare")).toFixed(3)}`,
    );
  }
  const summarize = (v: Variant): VariantSummary => {
    const rs = rounds.map((r) => r[v] as RoundResult);
    return {
      medianRps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      bytesPerResponse: median(rs.map((r) => r.bytesPerResponse)),
      serverCpuUs: medianOrNull(rs.map((r) => r.serverCpuUs)),
      dbCpuUs: medianOrNull(rs.map((r) => r.dbCpuUs)),
    };
  };
  const summary = Object.fromEntries(VARIANTS.map((v) => [v, summarize(v)])) as OpResult["summary"];
  const medianOf = (v: Variant) => (summary[v] as VariantSummary).medianRps;
  const ratioOfMedians = medianOf("governed") / medianOf("bare");
  return {
    op,
    variants: VARIANTS,
    rounds,
    summary,
    ratioOfMedians,
    medianOfRatios: median(rounds.map((r) => rpsOf(r, "governed") / rpsOf(r, "bare"))),
    sqlfnRatio: summary.sqlfn ? medianOf("sqlfn") / medianOf("bare") : null,
    auditedRatio: summary.audited ? medianOf("audited") / medianOf("bare") : null,
    uncachedRatio: summary.uncached ? medianOf("uncached") / medianOf("bare") : null,
    target: TARGETS[op],
    pass: ratioOfMedians >= TARGETS[op],
  };
}

// ── report ─────────────────────────────────────────────────────────────────────────────────
function table(rows: string[][], rightAlignFrom = 2): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) =>
          i >= rightAlignFrom ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0),
        )
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function report(results: OpResult[], meta: Record<string, unknown>): string {
  const lines: string[] = [];
  lines.push("");
  lines.push(
    `Trellis gateway bench: ${meta.postgres}, node ${process.version}, ${meta.cpus} CPUs, ` +
      `${CONNECTIONS} connections, ${ROUNDS} rounds x ${DURATION} s (+${WARMUP_ROUNDS} warm-up), ` +
      `log level ${LOG_LEVEL}${SYNC_COMMIT ? `, synchronous_commit=${SYNC_COMMIT}` : ""}`,
  );
  lines.push("");
  const us = (x: number | null) => (x === null ? "n/a" : x.toFixed(0));
  const perVariant = [
    [
      "op",
      "variant",
      "median req/s",
      "p50 ms",
      "p99 ms",
      "server CPU µs/req",
      "db CPU µs/req",
      "bytes/resp",
      "req/s per round",
    ],
  ];
  for (const r of results) {
    for (const v of r.variants) {
      const m = r.summary[v] as VariantSummary;
      perVariant.push([
        r.op,
        v,
        m.medianRps.toFixed(0),
        m.p50.toFixed(1),
        m.p99.toFixed(1),
        us(m.serverCpuUs),
        us(m.dbCpuUs),
        m.bytesPerResponse.toFixed(0),
        r.rounds.map((x) => rpsOf(x, v).toFixed(0)).join(" "),
      ]);
    }
  }
  lines.push(table(perVariant));
  lines.push("");
  const ratios = [["governed/bare", "ratio of medians", "median of ratios", "target", "result"]];
  for (const r of results) {
    ratios.push([
      r.op,
      r.ratioOfMedians.toFixed(3),
      r.medianOfRatios.toFixed(3),
      `>= ${r.target.toFixed(2)}`,
      r.pass ? "PASS" : "BELOW TARGET",
    ]);
  }
  lines.push(table(ratios, 1));
  lines.push("");
  for (const r of results) {
    if (r.uncachedRatio === null) continue;
    lines.push(
      `${r.op}: token verification cached per token (governed) vs verified in full on every request (uncached): ` +
        `uncached/bare ${r.uncachedRatio.toFixed(3)}, governed/uncached ${(r.ratioOfMedians / r.uncachedRatio).toFixed(3)} ` +
        "(revocation is checked on every request in both)",
    );
    lines.push("");
  }
  if (results.some((r) => r.sqlfnRatio !== null)) {
    lines.push(
      "diagnostic: sqlfn = the bare route calling the same trellis.gw_* SQL function as the gateway",
    );
    lines.push("(claims, RLS, audit insert) without the Node side (token, scopes, zod, Ajv).");
    for (const r of results) {
      if (r.sqlfnRatio !== null) lines.push(`  ${r.op}: sqlfn/bare ${r.sqlfnRatio.toFixed(3)}`);
    }
    if (results.some((r) => r.auditedRatio !== null))
      lines.push(
        "audited = the bare write plus its audit row in one statement on the owner connection",
      );
    for (const r of results) {
      if (r.auditedRatio === null) continue;
      lines.push(
        `  ${r.op}: audited/bare ${r.auditedRatio.toFixed(3)}, governed/audited ${(r.ratioOfMedians / r.auditedRatio).toFixed(3)}`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}

function policyReport(p: PolicyBenchResult): string {
  const rows = [["policy decisions", "median decisions/s", "per round"]];
  for (const v of ["unprepared", "preparsed", "memo"] as const) {
    rows.push([v, p.median[v].toFixed(0), p.perRound[v].map((x) => x.toFixed(0)).join(" ")]);
  }
  return `${table(rows, 1)}\npreparsed/unprepared ${p.preparsedRatio.toFixed(2)}x; memo/preparsed ${(p.median.memo / p.median.preparsed).toFixed(1)}x\n\n`;
}

// ── main ───────────────────────────────────────────────────────────────────────────────────
async function main() {
  log(`bench: creating database ${dbName} on ${shownUrl}`);
  const postgres = await withClient(BASE_URL, async (c) => {
    await c.query(`CREATE DATABASE ${dbName}`);
    dbCreated = true;
    if (SYNC_COMMIT)
      await c.query(`ALTER DATABASE ${dbName} SET synchronous_commit = '${SYNC_COMMIT}'`);
    const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return `PostgreSQL ${rows[0]?.v ?? "?"}`;
  });

  log("bench: starting the server (child process, migrating)…");
  const server = await startServer();
  const base = server.url;
  log(`bench: server at ${base}`);
  const uncachedServer = OPS.includes("read")
    ? await startServer({ BENCH_VERIFY_CACHE: "0" })
    : server;
  if (OPS.includes("read"))
    log(`bench: server without the verification cache at ${uncachedServer.url}`);
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  const app = await call<{ id: string }>(base, "POST", "/admin/v1/apps", {
    headers: admin,
    expect: 201,
    body: {
      name: "bench",
      template: "form-intake",
      owners: ["bench@example.com"],
      payload_schema: {
        type: "object",
        required: ["title"],
        properties: { title: { type: "string", maxLength: 200 }, n: { type: "integer" } },
      },
    },
  });
  const { token } = await call<{ token: string }>(base, "POST", `/admin/v1/apps/${app.id}/tokens`, {
    headers: admin,
    expect: 201,
    body: { subject: SUBJECT, scopes: ["create", "read"], ttl_seconds: 3600 },
  });

  const logApp = await call<{ id: string }>(base, "POST", "/admin/v1/apps", {
    headers: admin,
    expect: 201,
    body: {
      name: "bench log",
      template: "event-log",
      owners: ["bench@example.com"],
      payload_schema: {
        type: "object",
        required: ["title"],
        properties: { title: { type: "string", maxLength: 200 }, n: { type: "integer" } },
      },
    },
  });
  const { token: logToken } = await call<{ token: string }>(
    base,
    "POST",
    `/admin/v1/apps/${logApp.id}/tokens`,
    { headers: admin, expect: 201, body: { subject: SUBJECT, scopes: ["append", "read"] } },
  );

  const dirApp = await call<{ id: string }>(base, "POST", "/admin/v1/apps", {
    headers: admin,
    expect: 201,
    body: {
      name: "bench directory",
      template: "directory",
      owners: ["bench@example.com"],
      payload_schema: {
        type: "object",
        required: ["title"],
        properties: { title: { type: "string", maxLength: 200 }, n: { type: "integer" } },
      },
    },
  });
  const { token: dirToken } = await call<{ token: string }>(
    base,
    "POST",
    `/admin/v1/apps/${dirApp.id}/tokens`,
    { headers: admin, expect: 201, body: { subject: SUBJECT, scopes: ["create", "read"] } },
  );

  const cacheApp = await call<{ id: string }>(base, "POST", "/admin/v1/apps", {
    headers: admin,
    expect: 201,
    body: {
      name: "bench cache",
      template: "ttl-cache",
      owners: ["bench@example.com"],
      payload_schema: {
        type: "object",
        properties: { title: { type: "string", maxLength: 200 }, n: { type: "integer" } },
      },
    },
  });
  const { token: cacheToken } = await call<{ token: string }>(
    base,
    "POST",
    `/admin/v1/apps/${cacheApp.id}/tokens`,
    { headers: admin, expect: 201, body: { subject: SUBJECT, scopes: ["put", "read"] } },
  );

  const bookApp = await call<{ id: string }>(base, "POST", "/admin/v1/apps", {
    headers: admin,
    expect: 201,
    body: {
      name: "bench bookings",
      template: "bookings",
      owners: ["bench@example.com"],
      payload_schema: { type: "object" },
    },
  });
  const { token: bookToken } = await call<{ token: string }>(
    base,
    "POST",
    `/admin/v1/apps/${bookApp.id}/tokens`,
    { headers: admin, expect: 201, body: { subject: SUBJECT, scopes: ["create", "read"] } },
  );

  const reqApp = await call<{ id: string }>(base, "POST", "/admin/v1/apps", {
    headers: admin,
    expect: 201,
    body: {
      name: "bench approvals",
      template: "approval-queue",
      owners: ["bench@example.com"],
      payload_schema: {
        type: "object",
        required: ["title"],
        properties: { title: { type: "string", maxLength: 200 }, n: { type: "integer" } },
      },
    },
  });
  // The requester (SUBJECT) is not the reviewer: nobody reviews their own request.
  const { token: reqToken } = await call<{ token: string }>(
    base,
    "POST",
    `/admin/v1/apps/${reqApp.id}/tokens`,
    { headers: admin, expect: 201, body: { subject: SUBJECT, scopes: ["create", "read"] } },
  );

  log(`bench: seeding ${SEED} submissions for ${SUBJECT} through the governed route…`);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < SEED) {
        const n = next++;
        await call(base, "POST", `/api/v1/apps/${app.id}/submissions`, {
          token,
          expect: 201,
          body: { payload: { title: "seed", n } },
        });
      }
    }),
  );

  const gatewayPath = `/api/v1/apps/${app.id}/submissions`;
  const barePath = `/bench/bare/apps/${app.id}/submissions`;
  const sqlfnPath = `/bench/sqlfn/apps/${app.id}/submissions`;
  const auth = { authorization: `Bearer ${token}` };
  const json = { "content-type": "application/json" };
  const writeBody = { form_id: FORM_ID, payload: { title: "bench", n: 1 } };
  const appendBody = JSON.stringify({ type: "bench.tick", data: { title: "bench", n: 1 } });
  const unused = (): Target => ({ server, method: "GET", path: "/healthz", headers: {} });
  const itemBody = JSON.stringify({ kind: "bench", attrs: { title: "bench", n: 1 } });
  const requestBody = JSON.stringify({
    payload: { title: "bench", n: 1 },
    assigned_reviewer: REVIEWER,
  });
  // 256 keys, each written over and over: replaces (a new key each time would fill the quota,
  // one key alone would measure waits on its row lock).
  const entryBody = JSON.stringify({ value: { title: "bench", n: 1 }, ttl_seconds: 3600 });
  const entryKeys = Array.from({ length: 256 }, (_, i) => `bench-${i}`);
  // Every booking request (governed or bare: they share the table) takes a slot no other has:
  // one hour on one of 256 resources in turn, then the next hour. A repeated slot would be a
  // 409, which fails the run.
  let slot = 0;
  const HOUR = 3_600_000;
  const firstHour = Date.UTC(2031, 0, 1);
  const bookingBody = () => {
    const n = slot++;
    const start = firstHour + Math.floor(n / 256) * HOUR;
    return JSON.stringify({
      resource: `bench-${n % 256}`,
      starts_at: new Date(start).toISOString(),
      ends_at: new Date(start + HOUR).toISOString(),
    });
  };
  const targets: Record<Op, Record<Variant, Target>> = {
    request: {
      governed: {
        server,
        method: "POST",
        path: `/api/v1/apps/${reqApp.id}/requests`,
        headers: { authorization: `Bearer ${reqToken}`, ...json },
        body: requestBody,
      },
      bare: {
        server,
        method: "POST",
        path: `/bench/bare/apps/${reqApp.id}/requests`,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: requestBody,
      },
      uncached: unused(),
      sqlfn: unused(),
      audited: unused(),
    },
    booking: {
      governed: {
        server,
        method: "POST",
        path: `/api/v1/apps/${bookApp.id}/bookings`,
        headers: { authorization: `Bearer ${bookToken}`, ...json },
        bodies: bookingBody,
      },
      bare: {
        server,
        method: "POST",
        path: `/bench/bare/apps/${bookApp.id}/bookings`,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        bodies: bookingBody,
      },
      uncached: unused(),
      sqlfn: unused(),
      audited: unused(),
    },
    entry: {
      governed: {
        server,
        method: "PUT",
        path: `/api/v1/apps/${cacheApp.id}/entries/bench-0`,
        paths: entryKeys.map((k) => `/api/v1/apps/${cacheApp.id}/entries/${k}`),
        headers: { authorization: `Bearer ${cacheToken}`, ...json },
        body: entryBody,
      },
      bare: {
        server,
        method: "PUT",
        path: `/bench/bare/apps/${cacheApp.id}/entries/bench-0`,
        paths: entryKeys.map((k) => `/bench/bare/apps/${cacheApp.id}/entries/${k}`),
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: entryBody,
      },
      uncached: unused(),
      sqlfn: unused(),
      audited: unused(),
    },
    item: {
      governed: {
        server,
        method: "POST",
        path: `/api/v1/apps/${dirApp.id}/items`,
        headers: { authorization: `Bearer ${dirToken}`, ...json },
        body: itemBody,
      },
      bare: {
        server,
        method: "POST",
        path: `/bench/bare/apps/${dirApp.id}/items`,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: itemBody,
      },
      uncached: unused(),
      sqlfn: unused(),
      audited: unused(),
    },
    append: {
      governed: {
        server,
        method: "POST",
        path: `/api/v1/apps/${logApp.id}/events`,
        headers: { authorization: `Bearer ${logToken}`, ...json },
        body: appendBody,
      },
      bare: {
        server,
        method: "POST",
        path: `/bench/bare/apps/${logApp.id}/events`,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: appendBody,
      },
      uncached: unused(),
      sqlfn: unused(),
      audited: unused(),
    },
    read: {
      governed: { server, method: "GET", path: `${gatewayPath}?limit=${LIMIT}`, headers: auth },
      uncached: {
        server: uncachedServer,
        method: "GET",
        path: `${gatewayPath}?limit=${LIMIT}`,
        headers: auth,
      },
      bare: {
        server,
        method: "GET",
        path: `${barePath}?submitter=${SUBJECT}&limit=${LIMIT}`,
        headers: {},
      },
      sqlfn: {
        server,
        method: "GET",
        path: `${sqlfnPath}?submitter=${SUBJECT}&limit=${LIMIT}`,
        headers: {},
      },
      audited: unused(),
    },
    write: {
      governed: {
        server,
        method: "POST",
        path: gatewayPath,
        headers: { ...auth, ...json },
        body: JSON.stringify(writeBody),
      },
      bare: {
        server,
        method: "POST",
        path: barePath,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: JSON.stringify(writeBody),
      },
      uncached: {
        server: uncachedServer,
        method: "POST",
        path: gatewayPath,
        headers: { ...auth, ...json },
        body: JSON.stringify(writeBody),
      },
      sqlfn: {
        server,
        method: "POST",
        path: sqlfnPath,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: JSON.stringify(writeBody),
      },
      audited: {
        server,
        method: "POST",
        path: `/bench/audited/apps/${app.id}/submissions`,
        headers: { ...json, "x-bench-submitter": SUBJECT },
        body: JSON.stringify(writeBody),
      },
    },
  };

  // All variants must answer the same thing, or the ratio means nothing. (Before any write
  // round, so every list still sees exactly the seeded rows.)
  type Page = { items: { id: string }[]; next_cursor: string | null };
  const answer = async <T>(t: Target, expect: number) => {
    const body = t.bodies?.() ?? t.body;
    return call<T>(t.server.url, t.method, t.path, {
      headers: t.headers,
      expect,
      ...(body ? { body: JSON.parse(body) } : {}),
    });
  };
  const page = await answer<Page>(targets.read.governed, 200);
  if (page.items.length !== LIMIT || !page.next_cursor) {
    throw new Error(`the governed list answered ${page.items.length} items, expected ${LIMIT}`);
  }
  for (const v of variantsFor("read").filter((x) => x !== "governed")) {
    const p = await answer<Page>(targets.read[v], 200);
    if (JSON.stringify(p) !== JSON.stringify(page)) {
      throw new Error(
        `the governed and ${v} list answers differ; the comparison would be meaningless`,
      );
    }
  }
  const created = await answer<Record<string, unknown>>(targets.write.governed, 201);
  for (const v of variantsFor("write").filter((x) => x !== "governed")) {
    const c = await answer<Record<string, unknown>>(targets.write[v], 201);
    const shape = (o: Record<string, unknown>) =>
      JSON.stringify({ keys: Object.keys(o).sort(), sub: o.submitter_id, payload: o.payload });
    if (shape(c) !== shape(created)) {
      throw new Error(
        `the governed and ${v} create answers differ: ${JSON.stringify(created)} vs ${JSON.stringify(c)}`,
      );
    }
  }

  const appended = await answer<Record<string, unknown>>(targets.append.governed, 201);
  const appendedBare = await answer<Record<string, unknown>>(targets.append.bare, 201);
  const keys = (o: Record<string, unknown>) => JSON.stringify(Object.keys(o).sort());
  if (keys(appended) !== keys(appendedBare) || appendedBare.seq !== (appended.seq as number) + 1) {
    throw new Error(
      `the governed and bare append answers differ: ${JSON.stringify(appended)} vs ${JSON.stringify(appendedBare)}`,
    );
  }

  const item = await answer<Record<string, unknown>>(targets.item.governed, 201);
  const itemBare = await answer<Record<string, unknown>>(targets.item.bare, 201);
  if (keys(item) !== keys(itemBare)) {
    throw new Error(
      `the governed and bare item answers differ: ${JSON.stringify(item)} vs ${JSON.stringify(itemBare)}`,
    );
  }

  for (const path of targets.entry.governed.paths ?? []) {
    await answer({ ...targets.entry.governed, path }, 201); // created; measured puts replace
  }
  const entryGoverned = await answer<Record<string, unknown>>(targets.entry.governed, 200);
  const entryBare = await answer<Record<string, unknown>>(targets.entry.bare, 200);
  if (keys(entryGoverned) !== keys(entryBare)) {
    throw new Error(
      `the governed and bare entry answers differ: ${JSON.stringify(entryGoverned)} vs ${JSON.stringify(entryBare)}`,
    );
  }

  const booked = await answer<Record<string, unknown>>(targets.booking.governed, 201);
  const bookedBare = await answer<Record<string, unknown>>(targets.booking.bare, 201);
  if (keys(booked) !== keys(bookedBare)) {
    throw new Error(
      `the governed and bare booking answers differ: ${JSON.stringify(booked)} vs ${JSON.stringify(bookedBare)}`,
    );
  }

  const requested = await answer<Record<string, unknown>>(targets.request.governed, 201);
  const requestedBare = await answer<Record<string, unknown>>(targets.request.bare, 201);
  if (
    keys(requested) !== keys(requestedBare) ||
    requested.requester_id !== requestedBare.requester_id ||
    requested.state !== requestedBare.state
  ) {
    throw new Error(
      `the governed and bare request answers differ: ${JSON.stringify(requested)} vs ${JSON.stringify(requestedBare)}`,
    );
  }

  meter = await CpuMeter.open();
  const results: OpResult[] = [];
  try {
    for (const op of OPS as Op[]) results.push(await benchOp(op, targets[op]));
  } finally {
    await meter.close();
  }

  // Governance really happened: at least one audit event per measured governed request.
  const audit = await withClient(dbUrl, async (c) => {
    const { rows } = await c.query<{ action: string; n: string }>(
      "SELECT action, count(*) AS n FROM trellis.audit_events GROUP BY action ORDER BY action",
    );
    return Object.fromEntries(rows.map((r) => [r.action, Number(r.n)])) as Record<string, number>;
  });
  for (const r of results) {
    const action = {
      read: "submission.list",
      write: "submission.create",
      append: "event.append",
      item: "item.create",
      entry: "entry.put",
      booking: "booking.create",
      request: "request.create",
    }[r.op];
    const governed = r.rounds.reduce(
      (n, x) => n + (x.governed as RoundResult).requests + (x.uncached?.requests ?? 0),
      0,
    );
    if ((audit[action] ?? 0) < governed) {
      throw new Error(
        `${governed} governed ${r.op}s were measured but only ${audit[action] ?? 0} ${action} audit events exist`,
      );
    }
  }

  log(`bench: policy decisions, ${ROUNDS} rounds x ${POLICY_MS} ms per variant…`);
  const policy = benchPolicy(ROUNDS, POLICY_MS);

  const auditLog =
    AUDIT_EVENTS > 0 ? await benchAuditLog(BASE_URL, AUDIT_EVENTS, log, VERIFY_RUNS) : undefined;

  const meta = { postgres, cpus: availableParallelism() };
  process.stdout.write(report(results, meta));
  process.stdout.write(policyReport(policy));
  if (auditLog) process.stdout.write(auditLogReport(auditLog));
  process.stdout.write(`audit events in the bench database: ${JSON.stringify(audit)}\n`);
  if (JSON_OUT) {
    const out = {
      at: new Date().toISOString(),
      ...meta,
      node: process.version,
      connections: CONNECTIONS,
      duration_s: DURATION,
      rounds: ROUNDS,
      warmup_rounds: WARMUP_ROUNDS,
      log_level: LOG_LEVEL,
      synchronous_commit: SYNC_COMMIT ?? "server default",
      results,
      policy,
      audit,
      audit_log: auditLog,
    };
    writeFileSync(JSON_OUT, `${JSON.stringify(out, null, 2)}\n`);
    log(`bench: wrote ${JSON_OUT}`);
  }
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    log(`\nbench FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    process.exit(1);
  });
