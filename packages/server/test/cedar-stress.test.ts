import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../bench/stress-cedar.ts", import.meta.url));

/**
 * Node 20's V8 aborted the whole process under a few seconds of sustained Cedar decisions
 * (an inlined JS-to-Wasm call deoptimized mid-call; see src/modules/policy/engine.ts). This
 * runs that load in a child process: it must finish and say so, not die of SIGTRAP. The load is
 * a number of decisions (at least 15 000, over at least 4 s), not a rate: on a busy machine the
 * run takes longer instead of failing (a test asserts behaviour, not speed).
 */
describe("the Cedar engine under sustained load", () => {
  it("makes 15 000 decisions without the process aborting", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", SCRIPT, "4000", "15000"], {
      encoding: "utf8",
      timeout: 150_000,
    });
    expect(r.signal, r.stderr.slice(0, 2000)).toBeNull();
    expect(r.status, r.stderr.slice(0, 2000)).toBe(0);
    const decisions = Number(/^ok (\d+)/.exec(r.stdout)?.[1]);
    expect(decisions).toBeGreaterThanOrEqual(15_000);
  }, 160_000);
});
