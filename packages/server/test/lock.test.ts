import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DataDirLockedError, lockDataDir } from "../src/db/lock";

describe("data dir lock", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "trellis-lock-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("lets one holder in and refuses the second with a clear error naming the holder", async () => {
    const release = await lockDataDir(dir, () => {});
    await expect(lockDataDir(dir, () => {})).rejects.toThrow(DataDirLockedError);
    await expect(lockDataDir(dir, () => {})).rejects.toThrow(
      new RegExp(`in use by another Trellis process \\(pid ${process.pid}\\)`),
    );
    expect(existsSync(join(dir, "trellis.pid"))).toBe(true);
    await release();
    expect(existsSync(join(dir, "trellis.pid"))).toBe(false); // a clean stop leaves no holder named
    const again = await lockDataDir(dir, () => {});
    await again();
  });

  it("takes over the lock of a process that died without releasing it", async () => {
    // A real process takes the lock and is killed with SIGKILL, leaving lock and pid file behind.
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `import("${join(process.cwd(), "packages/server/src/db/lock.ts")}").then(m => m.lockDataDir(${JSON.stringify(dir)}, () => {}, 2000)).then(() => console.log("locked"))`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => d.toString().includes("locked") && resolve());
      child.on("exit", (code) => reject(new Error(`child exited ${code}`)));
    });
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const started = Date.now();
    const release = await lockDataDir(dir, () => {}, 2000);
    expect(Date.now() - started).toBeLessThan(8000);
    await release();
  });

  it("refuses at once when the recorded holder is alive", async () => {
    const release = await lockDataDir(dir, () => {});
    writeFileSync(join(dir, "trellis.pid"), `${process.ppid}\n`);
    const started = Date.now();
    await expect(lockDataDir(dir, () => {})).rejects.toThrow(`pid ${process.ppid}`);
    expect(Date.now() - started).toBeLessThan(1000);
    await release();
  });
});
