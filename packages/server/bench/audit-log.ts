/**
 * The verifiable audit log's own numbers, in-process on a fresh PostgreSQL database:
 *  - append: audit events committed per second by concurrent writers (the group-commit path
 *    reads use) while the sequencer runs, and how far behind the tree then is;
 *  - integrate: events per second the sequencer turns into leaves, nodes and checkpoints;
 *  - verify: events per second `trellis audit verify` checks (BENCH_AUDIT_EVENTS of them,
 *    default 1,000,000), on the log at rest, timed in a child process started with the Node
 *    flags the CLI gives the command (bench/verify-child.ts);
 *  - proof: inclusion-proof latency at that size, through the service the API uses.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { buildApp } from "../src/app";
import { parseConfig } from "../src/config/config";
import { openPostgres } from "../src/db/postgres";
import { systemClock } from "../src/lib/clock";
import { auditService } from "../src/modules/audit/audit.service";
import { VERIFY_NODE_FLAGS } from "../src/modules/transparency/verify-flags.js";

export interface AuditLogBenchResult {
  append_events_per_s: number;
  append_writers: number;
  lag_after_append_ms: number;
  integrate_events_per_s: number;
  /** The median of `verify_runs`. */
  verify_events_per_s: number;
  verify_runs: number[];
  events: number;
  proof_ms: { p50: number; p99: number; n: number };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

export async function benchAuditLog(
  baseUrl: string,
  events: number,
  log: (m: string) => void,
  verifyRuns = 3,
): Promise<AuditLogBenchResult> {
  const name = `trellis_bench_audit_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client(baseUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  const dataDir = mkdtempSync(join(tmpdir(), "trellis-bench-audit-"));
  const db = await openPostgres(url.toString(), 20);
  try {
    const config = parseConfig({
      DATABASE_URL: url.toString(),
      TRELLIS_ADMIN_TOKEN: `bench-${randomBytes(24).toString("hex")}`,
      TRELLIS_MASTER_KEY: randomBytes(32).toString("base64"),
      TRELLIS_DATA_DIR: dataDir,
      TRELLIS_LOG_LEVEL: "warn",
    });
    const app = await buildApp({ config, db });
    const log_ = app.transparency;

    // 1. Concurrent writers through the group commit, the sequencer running (merge delay 1 s).
    const writers = 16;
    const audit = auditService({ db, clock: systemClock });
    const ctx = {
      requestId: "req_bench",
      actorId: "bench",
      actorRole: "admin" as const,
      appId: null,
      tokenId: null,
    };
    let appended = 0;
    const stopAt = Date.now() + 5000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: writers }, async () => {
        while (Date.now() < stopAt) {
          await audit.record(ctx, { action: "audit.list", resourceType: "audit_event" });
          appended += 1;
        }
      }),
    );
    const appendRate = appended / ((performance.now() - t0) / 1000);
    const lagStart = performance.now();
    await log_.flush();
    const lag = performance.now() - lagStart;
    log(
      `bench audit: ${appended} events appended by ${writers} writers (${appendRate.toFixed(0)}/s); the tree caught up ${lag.toFixed(0)} ms later`,
    );
    await log_.stop();

    // 2. Fill to `events` with plain inserts, then integrate them (sequencer throughput).
    const { rows: c0 } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM trellis.audit_events",
    );
    let have = c0[0]?.n ?? 0;
    while (have < events) {
      const n = Math.min(100_000, events - have);
      await db.query(
        `INSERT INTO trellis.audit_events (event_id, occurred_at, actor_id, actor_role, action,
           resource_type, resource_id, app_id, token_id, policy_ids, outcome, request_id)
         SELECT 'evt_b' || g || '_' || $2, now(), 'bench-user', 'app_user', 'submission.create',
                'submission', md5(g::text), 'app_bench', 'tok_bench', ARRAY['owner-write.create'],
                'allowed', 'req_' || g
           FROM generate_series(1, $1) g`,
        [n, have],
      );
      have += n;
      log(`bench audit: ${have}/${events} events stored`);
    }
    const i0 = performance.now();
    let integrated = 0;
    for (;;) {
      const cp = await log_.tick();
      if (!cp) break;
      integrated = cp.treeSize;
      if (integrated % 100_000 < 5000) log(`bench audit: ${integrated} leaves`);
    }
    const integrateRate = (events - (c0[0]?.n ?? 0)) / ((performance.now() - i0) / 1000);

    // 3. Verify the whole log, at rest: a million rows just inserted set autovacuum going, and
    // its pass (and the first reader's hint-bit writes) would be measured as verify's. An audit
    // log is verified long after its rows were written; this gets it to that state first.
    await db.exec(
      "VACUUM (ANALYZE) trellis.audit_events, trellis.audit_leaves, trellis.audit_tree",
    );
    // And written out: the insert and the vacuum left about a gigabyte of dirty pages, which a
    // checkpoint during the timed run would write out (and did: the same log verified slower
    // here than at rest). Needs a superuser or pg_checkpointer; without, the run goes on.
    await db
      .exec("CHECKPOINT")
      .catch((err: Error) => log(`bench audit: no CHECKPOINT (${err.message})`));
    // Timed in a child started as the CLI starts `trellis audit verify` (its Node flags),
    // `verifyRuns` times: one run on this shared machine varies by ±15 %, so the median counts.
    const rates: number[] = [];
    let verifiedEvents = 0;
    for (let run = 1; run <= verifyRuns; run++) {
      const verified = await verifyInChild(url.toString(), (m) =>
        log(`bench audit: verify ${run}/${verifyRuns}: ${m}`),
      );
      if (!verified.ok) throw new Error(`audit verify failed: ${verified.problem}`);
      verifiedEvents = verified.events;
      rates.push(Math.round(verified.events / verified.seconds));
      log(`bench audit: verify ${run}/${verifyRuns}: ${rates.at(-1)} events/s`);
    }

    // 4. Inclusion proofs of random events at that size.
    const { rows: ids } = await db.query<{ event_id: string }>(
      "SELECT event_id FROM trellis.audit_events TABLESAMPLE SYSTEM (1) LIMIT 200",
    );
    const ms: number[] = [];
    for (const { event_id } of ids) {
      const s = performance.now();
      await log_.proof(event_id);
      ms.push(performance.now() - s);
    }
    await app.close();
    return {
      append_events_per_s: Math.round(appendRate),
      append_writers: writers,
      lag_after_append_ms: Math.round(lag),
      integrate_events_per_s: Math.round(integrateRate),
      verify_events_per_s: pct(rates, 50),
      verify_runs: rates,
      events: verifiedEvents,
      proof_ms: { p50: pct(ms, 50), p99: pct(ms, 99), n: ms.length },
    };
  } finally {
    await db.close();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function auditLogReport(r: AuditLogBenchResult): string {
  return [
    "audit log (fresh database; verify in a child with the CLI's Node flags)",
    `  append, ${r.append_writers} concurrent writers, sequencer running: ${r.append_events_per_s} events/s; tree caught up ${r.lag_after_append_ms} ms after the last`,
    `  sequencer integration: ${r.integrate_events_per_s} events/s`,
    `  audit verify over ${r.events} events: ${r.verify_events_per_s} events/s, median of runs ${r.verify_runs.join(" ")} (target >= 100000)`,
    `  inclusion proof at ${r.events} events: p50 ${r.proof_ms.p50.toFixed(1)} ms, p99 ${r.proof_ms.p99.toFixed(1)} ms (n=${r.proof_ms.n})`,
    "",
  ].join("\n");
}

/** `bench/verify-child.ts` on `url`, with the flags `trellis audit verify` runs with. */
function verifyInChild(
  url: string,
  progress: (m: string) => void,
): Promise<{ ok: boolean; events: number; seconds: number; problem?: string }> {
  const script = new URL("./verify-child.ts", import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [...VERIFY_NODE_FLAGS, "--import", import.meta.resolve("tsx"), script, url],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    for (const line of c.toString().split("\n")) if (line.trim()) progress(line.trim());
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`the verify child exited with ${code}`));
      else resolve(JSON.parse(out));
    });
  });
}
