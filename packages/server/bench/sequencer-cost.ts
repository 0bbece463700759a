/**
 * The audit sequencer's CPU per integrated event, apart from the request path:
 *   npx tsx packages/server/bench/sequencer-cost.ts
 * On a fresh database `trellis_seqcost_<pid>` (dropped at the end): B events (default 1 400,
 * about what one tick takes in at the bench's write rate) stored straight into the log, then
 * one `tick()`, N events in all (default 70 000). Prints Node's CPU (this process, every
 * thread: `process.cpuUsage`) and PostgreSQL's (the sum of its processes' utime + stime from
 * /proc, nothing else using the server meanwhile) per event, the wall time of the ticks, and
 * how long the event loop was held during them (p99 and max of `monitorEventLoopDelay`: what a
 * request arriving meanwhile would wait).
 * Compare two trees side by side (a `git worktree`), alternating: runs differ by ±15 % here.
 * BENCH_DATABASE_URL names the server (default the local test server).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import pg from "pg";
import { openPostgres } from "../src/db/postgres";
import { appWithSequencerStopped, storeEvents } from "./audit-fixture";

const base = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const name = `trellis_seqcost_${process.pid}`;
const url = new URL(base);
url.pathname = `/${name}`;
const N = Number(process.env.N ?? 70_000);
const B = Number(process.env.B ?? 1_400);

/** CPU milliseconds of every PostgreSQL process on this machine so far. */
function postgresCpuMs(): number {
  let ticks = 0;
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
    } catch {} // a process that ended meanwhile
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

const admin = new pg.Client(base);
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const db = await openPostgres(url.toString(), 5);
const dataDir = mkdtempSync(join(tmpdir(), "trellis-seqcost-"));
try {
  // Only the ticks below integrate.
  const app = await appWithSequencerStopped(db, url.toString(), dataDir);
  let done = 0;
  let nodeMs = 0;
  let pgMs = 0;
  let wallMs = 0;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  while (done < N) {
    await storeEvents(db, B, done + 1);
    const pg0 = postgresCpuMs();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    delay.enable();
    await app.transparency.tick();
    delay.disable();
    wallMs += performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    nodeMs += (cpu.user + cpu.system) / 1000;
    pgMs += postgresCpuMs() - pg0;
    done += B;
  }
  const us = (ms: number) => ((ms * 1000) / done).toFixed(1);
  console.log(
    `${done} events, ${B} a tick: per event Node ${us(nodeMs)} µs, PostgreSQL ${us(pgMs)} µs CPU; ticks ${us(wallMs)} µs wall; event loop held p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms`,
  );
  await app.close();
} finally {
  await db.close();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
}
