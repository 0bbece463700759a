import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import lockfile from "proper-lockfile";

export class DataDirLockedError extends Error {
  constructor(dir: string, holder: string) {
    super(
      `The data folder ${dir} is in use by another Trellis process (${holder}). ` +
        "Two processes must never open one embedded database: stop the other one, or give this one its own TRELLIS_DATA_DIR, or use PostgreSQL (DATABASE_URL) to run several servers.",
    );
    this.name = "DataDirLockedError";
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * Takes the exclusive lock on an embedded data folder (proper-lockfile: an atomic mkdir kept
 * fresh by mtime). A lock left by a crashed process turns stale after `staleMs`; we wait for
 * that only when the recorded holder's pid is gone, otherwise we refuse at once.
 * Returns the release function.
 */
export async function lockDataDir(
  dir: string,
  onCompromised: (err: Error) => void,
  staleMs = 10_000,
): Promise<() => Promise<void>> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pidFile = join(dir, "trellis.pid");
  const opts = {
    lockfilePath: join(dir, "trellis.lock"),
    stale: staleMs,
    update: Math.floor(staleMs / 4),
    realpath: false,
    onCompromised,
  };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, { ...opts, retries: 0 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw err;
    let holder = "unknown pid";
    let holderPid = Number.NaN;
    try {
      holderPid = Number(readFileSync(pidFile, "utf8").trim());
      holder = `pid ${holderPid}`;
    } catch {}
    if (Number.isInteger(holderPid) && (holderPid === process.pid || alive(holderPid))) {
      throw new DataDirLockedError(dir, holder);
    }
    // The holder is gone: its lock becomes stale within staleMs; wait that long at most.
    try {
      release = await lockfile.lock(dir, {
        ...opts,
        retries: { retries: Math.ceil(staleMs / 500) + 2, minTimeout: 500, maxTimeout: 500 },
      });
    } catch {
      throw new DataDirLockedError(dir, holder);
    }
  }
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  // A clean stop leaves no pid behind (a later reader would take it for a holder).
  return async () => {
    rmSync(pidFile, { force: true });
    await release();
  };
}
