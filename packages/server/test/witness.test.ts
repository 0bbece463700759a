import { randomBytes } from "node:crypto";
import { verifyCheckpoint, verifyCosignature } from "@trellis/sdk";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app";
import { ADMIN_TOKEN, DATASTORES, startTestApp, type TestApp } from "./harness";

/** Two Trellis instances: B witnesses A's audit log (C2SP tlog-witness, cosignature/v1). */
describe.each(DATASTORES)("a second Trellis as the witness, on %s", (kind) => {
  let a: TestApp;
  let b: TestApp;
  let log: FastifyInstance; // A, configured to send its checkpoints to B
  let aKey: string;
  let bKey: string;
  let bUrl: string;
  const touch = (n: number) =>
    Promise.all(
      Array.from({ length: n }, () =>
        log.inject({
          method: "GET",
          url: "/admin/v1/templates",
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        }),
      ),
    );

  beforeAll(async () => {
    a = await startTestApp(kind);
    await a.app.transparency.stop();
    aKey = a.app.transparency.signer.verifierKey;
    b = await startTestApp(kind, { TRELLIS_WITNESS_LOGS: aKey });
    bUrl = await b.listen();
    bKey = (await b.app.inject({ method: "GET", url: "/witness/key" })).body.trim();
    log = await buildApp({
      config: {
        ...a.config,
        auditWitness: { url: bUrl, key: bKey },
        auditMergeDelayMs: 60_000,
        logLevel: "error",
      },
      db: a.db,
      clock: a.clock,
    });
  });
  afterAll(async () => {
    await log?.close();
    await a?.close();
    await b?.close();
  });

  it("every new checkpoint comes back cosigned; the published checkpoint carries both signatures", async () => {
    await touch(3);
    await log.transparency.flush();
    const first = (await log.inject({ method: "GET", url: "/audit/checkpoint" })).body;
    const cp1 = verifyCheckpoint(first, aKey);
    expect(verifyCosignature(first, bKey).timestamp).toBeGreaterThan(0);
    await touch(4); // the next one needs a consistency proof from the size B cosigned
    await log.transparency.flush();
    const second = (await log.inject({ method: "GET", url: "/audit/checkpoint" })).body;
    expect(verifyCheckpoint(second, aKey).treeSize).toBeGreaterThan(cp1.treeSize);
    expect(() => verifyCosignature(second, bKey)).not.toThrow();
    // A cosignature does not verify under another witness's key, nor on another checkpoint.
    expect(() => verifyCosignature(second, aKey)).toThrow();
    const moved = second.replace(/\n(\d+)\n/, (_m, n) => `\n${Number(n) + 1}\n`);
    expect(() => verifyCosignature(moved, bKey)).toThrow(/no cosignature/);
  });

  const add = (body: string) =>
    b.app.inject({
      method: "POST",
      url: "/witness/add-checkpoint",
      headers: { "content-type": "text/plain" },
      payload: body,
    });

  it("the witness refuses a fork, a wrong starting size, an unknown log and a bad signature", async () => {
    const { rows } = await b.db.query<{ n: number }>(
      "SELECT tree_size::int AS n FROM trellis.witness_heads",
    );
    const have = rows[0]?.n as number;
    // A checkpoint A's key really signed, but over a root not consistent with what B saw.
    const fork = a.app.transparency.signer.signCheckpoint(have + 5, randomBytes(32));
    const proof = `${randomBytes(32).toString("base64")}\n`;
    expect((await add(`old ${have}\n${proof}\n${fork}`)).statusCode).toBe(422);
    const wrongOld = await add(`old ${have + 1}\n\n${fork}`);
    expect(wrongOld.statusCode).toBe(409);
    expect(wrongOld.body).toBe(`${have}\n`);
    const other = fork.replace(/^[^\n]+/, "some.other/log");
    expect((await add(`old 0\n\n${other}`)).statusCode).toBe(404);
    const tampered = fork.replace(/\n(\d+)\n/, (_m, n) => `\n${Number(n) + 1}\n`);
    expect((await add(`old ${have}\n${proof}\n${tampered}`)).statusCode).toBe(403);
    expect((await add("nonsense")).statusCode).toBe(400);
    // B's head did not move.
    const { rows: after } = await b.db.query<{ n: number }>(
      "SELECT tree_size::int AS n FROM trellis.witness_heads",
    );
    expect(after[0]?.n).toBe(have);
  });
});
