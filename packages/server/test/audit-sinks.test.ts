import { createHmac, timingSafeEqual } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { leafHash } from "@trellis/sdk";
import canonicalize from "canonicalize";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/config";
import { auditSinks } from "../src/modules/transparency/sinks";
import { createApp, DATASTORES, issueToken, startTestApp, type TestApp } from "./harness";

const SECRET = "webhook-secret-0123456789abcdefghijklmnop";

describe.each(DATASTORES)("audit sinks on %s", (kind) => {
  let t: TestApp;
  let server: Server;
  const received: Array<{ leaf_index: number; leaf_hash: string; event: Record<string, unknown> }> =
    [];
  let failNext = 0;
  let failStatus = 503;
  let badSignatures = 0;
  let sinkFile: string;
  const dir = mkdtempSync(join(tmpdir(), "trellis-sinks-"));
  let files = 0;
  const newFile = () => join(dir, `sink-${files++}.ndjson`);

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const ts = String(req.headers["x-trellis-timestamp"]);
        const want = `sha256=${createHmac("sha256", SECRET).update(`${ts}.${body}`).digest("hex")}`;
        const got = String(req.headers["x-trellis-signature"]);
        if (got.length !== want.length || !timingSafeEqual(Buffer.from(got), Buffer.from(want))) {
          badSignatures += 1;
          res.writeHead(401).end();
          return;
        }
        if (failNext > 0) {
          failNext -= 1;
          res.writeHead(failStatus).end();
          return;
        }
        received.push(...JSON.parse(body).events);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    t = await startTestApp(kind, {
      TRELLIS_AUDIT_WEBHOOK_URL: `http://127.0.0.1:${port}/audit`,
      TRELLIS_AUDIT_WEBHOOK_SECRET: SECRET,
      TRELLIS_AUDIT_SINK_FILE: join(mkdtempSync(join(tmpdir(), "trellis-sink-")), "audit.ndjson"),
      TRELLIS_AUDIT_MERGE_DELAY_MS: "60000", // the test drives the sinks itself
    });
    sinkFile = t.config.auditSinkFile as string;
    const app = await createApp(t);
    const token = await issueToken(t, app, "ana", ["create"]);
    for (let i = 0; i < 5; i++)
      await t.call({
        method: "POST",
        url: `/api/v1/apps/${app}/submissions`,
        token,
        body: { payload: { title: `t${i}` } },
      });
    await t.app.transparency.flush();
  });
  afterAll(async () => {
    await t?.close();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const treeSize = async () =>
    Number(
      (await t.db.query<{ n: number }>("SELECT tree_size AS n FROM trellis.audit_log_state"))
        .rows[0]?.n,
    );

  it("the file gets every leaf in order, exactly as hashed, and resumes after its last line", async () => {
    await t.app.auditSinks.runOnce();
    const lines = () =>
      readFileSync(sinkFile, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
    const first = lines();
    expect(first.map((l) => l.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
    for (const l of first) {
      const hash = leafHash(new TextEncoder().encode(canonicalize(l.event) as string));
      expect(Buffer.from(hash).toString("base64")).toBe(l.leaf_hash);
    }
    await t.call({ method: "GET", url: "/admin/v1/templates" });
    await t.app.transparency.flush();
    await t.app.auditSinks.runOnce();
    await t.app.auditSinks.runOnce(); // nothing new: nothing written twice
    const after = lines();
    expect(after.map((l) => l.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
    // After a restart the sink reads its position from the file: one more event, one more line.
    await t.call({ method: "GET", url: "/admin/v1/templates" });
    await t.app.transparency.flush();
    await auditSinks({ db: t.db, clock: t.clock, file: sinkFile, intervalMs: 1000 }).runOnce();
    expect(lines().map((l) => l.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
  });

  it("the webhook is retried with backoff while it fails, never blocking requests, and gets every leaf once", async () => {
    await t.call({ method: "GET", url: "/admin/v1/templates" }); // a new event to deliver
    await t.app.transparency.flush();
    const before = received.length;
    failNext = 2;
    await t.app.auditSinks.runOnce(); // 503: backs off
    expect(received.length).toBe(before);
    expect(t.app.auditSinks.status().webhook.failures).toBe(1);
    // Requests go on meanwhile.
    const res = await t.call({ method: "GET", url: "/admin/v1/templates" });
    expect(res.status).toBe(200);
    await t.app.transparency.flush();
    await t.app.auditSinks.runOnce(); // still backing off: no attempt
    expect(failNext).toBe(1);
    t.clock.advance(2);
    await t.app.auditSinks.runOnce(); // 503 again
    t.clock.advance(5);
    await t.app.auditSinks.runOnce(); // delivered
    expect(t.app.auditSinks.status().webhook.failures).toBe(0);
    expect(received.map((r) => r.leaf_index)).toEqual(
      Array.from({ length: await treeSize() }, (_, i) => i),
    );
    expect(badSignatures).toBe(0);
  });

  const WINDOW = 1 << 20; // how far back the sink reads at a time
  const NL = 0x0a;

  /** A fresh sink, as after a restart, with a log that keeps what it is told. */
  const restarted = (file: string, opts: { webhook?: boolean } = {}) => {
    const logged: Array<{ level: "warn" | "error"; obj: Record<string, unknown>; msg: string }> =
      [];
    const sinks = auditSinks({
      db: t.db,
      clock: t.clock,
      file,
      webhook: opts.webhook ? t.config.auditWebhook : undefined,
      intervalMs: 1000,
      log: {
        warn: (obj, msg) => logged.push({ level: "warn", obj: obj as never, msg }),
        error: (obj, msg) => logged.push({ level: "error", obj: obj as never, msg }),
      },
    });
    return { sinks, logged };
  };
  /** The whole log as the file sink writes it, from a new file. */
  const wholeFile = async () => {
    const f = newFile();
    await restarted(f).sinks.runOnce();
    return readFileSync(f);
  };
  const leafIndexes = (bytes: Buffer) => {
    expect(bytes.at(-1)).toBe(NL);
    return bytes
      .subarray(0, -1)
      .toString("utf8")
      .split("\n")
      .map((l) => (JSON.parse(l) as { leaf_index: number }).leaf_index);
  };
  const allLeaves = async () => Array.from({ length: await treeSize() }, (_, i) => i);
  const newEvent = async () => {
    await t.call({ method: "GET", url: "/admin/v1/templates" });
    await t.app.transparency.flush();
  };
  /** Where the line holding byte `at` starts. */
  const lineStart = (bytes: Buffer, at: number) => bytes.lastIndexOf(NL, at - 1) + 1;

  const TORN: Array<{ name: string; make(whole: Buffer): Buffer }> = [
    { name: "the final newline missing", make: (w) => w.subarray(0, -1) },
    {
      name: "cut in the middle of the last line",
      make: (w) => w.subarray(0, lineStart(w, w.length - 1) + 40),
    },
    {
      name: "cut in the middle of a line three from the end (a batch torn part way)",
      make: (w) => {
        let at = w.length - 1;
        for (let i = 0; i < 3; i++) at = lineStart(w, at) - 1;
        return w.subarray(0, lineStart(w, at) + 25);
      },
    },
    { name: "cut inside the first line (no complete line at all)", make: (w) => w.subarray(0, 7) },
    {
      name: "a torn line longer than the tail window",
      make: (w) => {
        const keep = w.subarray(0, lineStart(w, lineStart(w, w.length - 1) - 1));
        const n = leafIndexes(Buffer.from(keep)).length;
        const torn = `{"leaf_index":${n},"leaf_hash":"${"A".repeat(WINDOW + 12_345)}`;
        return Buffer.concat([keep, Buffer.from(torn)]);
      },
    },
    {
      name: "a file that is one torn line longer than the tail window",
      make: () => Buffer.from(`{"leaf_index":0,"leaf_hash":"${"B".repeat(2 * WINDOW)}`),
    },
  ];

  it.each(TORN)("a torn last line is cut off and rewritten: $name", async ({ make }) => {
    const whole = await wholeFile();
    const torn = make(whole);
    expect(torn.at(-1)).not.toBe(NL);
    const f = newFile();
    writeFileSync(f, torn);
    const { sinks, logged } = restarted(f);
    await sinks.runOnce();
    const after = readFileSync(f);
    // Whole again: every line parses, leaves 0.. in order, none doubled or lost.
    expect(leafIndexes(after)).toEqual(await allLeaves());
    expect(after.equals(whole)).toBe(true);
    const dropped = torn.length - lineStart(torn, torn.length);
    expect(logged).toEqual([
      {
        level: "warn",
        obj: expect.objectContaining({ file: f, droppedBytes: dropped }),
        msg: expect.stringMatching(new RegExp(`torn last line of ${dropped} bytes`)),
      },
    ]);
    expect(sinks.status().file.failures).toBe(0);
    // Restarted again: nothing to cut, nothing to add.
    const again = restarted(f);
    await again.sinks.runOnce();
    expect(readFileSync(f).equals(whole)).toBe(true);
    expect(again.logged).toEqual([]);
  });

  const FOREIGN: Array<{ name: string; content(whole: Buffer): Buffer; reason: RegExp }> = [
    {
      name: "someone's notes",
      content: () => Buffer.from("shopping list\nmilk\n"),
      reason: /last complete line is not an audit line/,
    },
    {
      name: "JSON lines of another kind",
      content: () => Buffer.from('{"level":30,"msg":"listening"}\n{"level":30,"msg":"bye"}\n'),
      reason: /last complete line is not an audit line/,
    },
    {
      name: "a foreign last complete line followed by what looks like a torn audit line",
      content: () => Buffer.from('milk\n{"leaf_index":0,"le'),
      reason: /last complete line is not an audit line/,
    },
    {
      name: "a blank last line after audit lines",
      content: (w) => Buffer.concat([w, Buffer.from("\n")]),
      reason: /last complete line is not an audit line/,
    },
    {
      name: "audit lines followed by bytes someone else appended",
      content: (w) => Buffer.concat([w, Buffer.from("appended by hand, no newline")]),
      reason: /last 28 bytes .* are not the start of an audit line/,
    },
    {
      name: "another log's file, ending past this tree",
      content: (w) => {
        const last = JSON.parse(w.subarray(lineStart(w, w.length - 1)).toString("utf8"));
        const next = { ...last, leaf_index: 1_000_000 };
        return Buffer.concat([w, Buffer.from(`${JSON.stringify(next)}\n`)]);
      },
      reason: /last line is leaf 1000000 but this log has \d+ leaves/,
    },
    {
      name: "another log's file, ending inside this tree with another hash",
      content: () =>
        Buffer.from(
          `${JSON.stringify({ leaf_index: 0, leaf_hash: Buffer.alloc(32, 7).toString("base64"), event: {} })}\n`,
        ),
      reason: /last line is leaf 0 with another hash/,
    },
    {
      name: "a last line longer than the tail window",
      content: () => Buffer.from(`${"x".repeat(WINDOW + 1)}\n`),
      reason: /last complete line is longer than/,
    },
  ];

  it.each(FOREIGN)(
    "a file that is not this log's is refused and left untouched, and the webhook still delivers: $name",
    async ({ content, reason }) => {
      const bytes = content(await wholeFile());
      const f = newFile();
      writeFileSync(f, bytes);
      await newEvent(); // something for the webhook to deliver
      const { sinks, logged } = restarted(f, { webhook: true });
      await sinks.runOnce();
      expect(readFileSync(f).equals(bytes)).toBe(true);
      expect(logged).toEqual([
        {
          level: "error",
          obj: expect.objectContaining({ file: f, reason: expect.stringMatching(reason) }),
          msg: expect.stringMatching(/refuses .* left untouched/),
        },
      ]);
      expect(sinks.status().file.failures).toBe(1);
      expect(received.map((r) => r.leaf_index)).toEqual(await allLeaves());
      expect(sinks.status().webhook.failures).toBe(0);
      // It keeps refusing, with backoff, and never touches the file.
      await sinks.runOnce(); // backing off: no attempt
      expect(logged).toHaveLength(1);
      t.clock.advance(2);
      await sinks.runOnce();
      expect(logged).toHaveLength(2);
      expect(logged[1]?.level).toBe("error");
      expect(sinks.status().file.failures).toBe(2);
      expect(readFileSync(f).equals(bytes)).toBe(true);
    },
  );

  it.skipIf(!existsSync("/dev/full"))(
    "a file sink that cannot write (a full disk) does not stop the webhook",
    async () => {
      await newEvent();
      const { sinks, logged } = restarted("/dev/full", { webhook: true });
      await sinks.runOnce();
      expect(logged).toEqual([
        {
          level: "warn",
          obj: expect.objectContaining({ file: "/dev/full", failures: 1 }),
          msg: "audit file sink failed; retrying",
        },
      ]);
      expect(logged[0]?.obj.err).toMatchObject({ code: "ENOSPC" });
      expect(received.map((r) => r.leaf_index)).toEqual(await allLeaves());
      expect(sinks.status()).toEqual({
        file: { failures: 1, retryAt: expect.any(Number) },
        webhook: { failures: 0, retryAt: 0 },
      });
    },
  );

  it("a webhook that is down (500) does not stop the file", async () => {
    // Its own file: one file has one writer (the app's sink already writes sinkFile).
    const f = newFile();
    const { sinks, logged } = restarted(f, { webhook: true });
    const lines = () => leafIndexes(readFileSync(f));
    const before = received.length;
    failStatus = 500;
    failNext = 1_000;
    try {
      await newEvent();
      await sinks.runOnce();
      expect(lines()).toEqual(await allLeaves());
      expect(sinks.status().webhook.failures).toBe(1);
      expect(sinks.status().file.failures).toBe(0);
      // The webhook backs off; the file goes on.
      await newEvent();
      await sinks.runOnce();
      expect(lines()).toEqual(await allLeaves());
      t.clock.advance(2);
      await newEvent();
      await sinks.runOnce(); // 500 again
      expect(lines()).toEqual(await allLeaves());
      expect(sinks.status().webhook.failures).toBe(2);
      expect(received.length).toBe(before);
      expect(logged.map((l) => [l.level, l.msg])).toEqual([
        ["warn", "audit webhook delivery failed; retrying"],
        ["warn", "audit webhook delivery failed; retrying"],
      ]);
    } finally {
      failNext = 0;
      failStatus = 503;
    }
    t.clock.advance(5);
    await sinks.runOnce();
    expect(sinks.status().webhook.failures).toBe(0);
    expect(received.map((r) => r.leaf_index)).toEqual(await allLeaves());
    expect(lines()).toEqual(await allLeaves());
    expect(badSignatures).toBe(0);
  });

  it("a webhook URL without its secret is a configuration error", () => {
    expect(() => parseConfig({ TRELLIS_AUDIT_WEBHOOK_URL: "https://example.org/hook" })).toThrow(
      /TRELLIS_AUDIT_WEBHOOK_SECRET/,
    );
    expect(() =>
      parseConfig({
        TRELLIS_AUDIT_WEBHOOK_URL: "ftp://example.org",
        TRELLIS_AUDIT_WEBHOOK_SECRET: SECRET,
      }),
    ).toThrow(/TRELLIS_AUDIT_WEBHOOK_URL/);
  });
});
