// `@trellis/sdk` as its consumers get it: the tarball `npm pack` makes, installed into a project
// outside the repo and imported by package name from plain Node (no tsx, no loader, no
// NODE_OPTIONS), and the repo's own node_modules as `npm ci` leaves it. Everything else in the
// repo runs the TypeScript source (the "trellis-source" export condition); this is the test of
// the build. `npm pack` runs the package's `prepack`, so dist/ is rebuilt from src/ first and is
// never stale here.
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { noteSignerFromKey } from "../../server/src/modules/transparency/note";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SDK = join(ROOT, "packages/sdk");
const VECTORS = join(SDK, "test/vectors/transparency-dev-merkle");

interface PackedFile {
  path: string;
}
interface PackResult {
  filename: string;
  files: PackedFile[];
}
interface PackedManifest {
  name: string;
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** What CHECK prints: everything asserted about the package as plain Node loaded it. */
interface Checked {
  resolved: string;
  execArgv: string[];
  nodeOptions: string | null;
  exports: string[];
  inclusion: boolean;
  inclusionFlipped: boolean;
  inclusionVectorTampered: boolean;
  consistency: boolean;
  consistencyFlipped: boolean;
  checkpoint: { origin: string; treeSize: number; rootHash: string };
  checkpointTampered: string;
  clients: string[];
  apiError: { isTrellisApiError: boolean; status: number; code: string; requestId: string };
}

// The consumer's script: an ES module given to `node --input-type=module -e`, so the bare
// specifier resolves from the working directory, as in a consumer's own project.
const CHECK = `
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
const sdk = await import("@trellis/sdk");
const input = JSON.parse(readFileSync(process.argv[1], "utf8"));
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
const flip = (hashes, i) => hashes.map((h, j) => (j === i ? h.map((x, k) => (k === 0 ? x ^ 1 : x)) : h));
const inc = input.inclusion, con = input.consistency, bad = input.inclusionTampered;
const incProof = inc.proof.map(b64), conProof = con.proof.map(b64);
const checkpoint = sdk.verifyCheckpoint(input.note, input.verifierKey);
let checkpointTampered = "accepted";
try { sdk.verifyCheckpoint(input.note.replace("\\n" + checkpoint.treeSize + "\\n", "\\n" + (checkpoint.treeSize + 1) + "\\n"), input.verifierKey); }
catch (err) { checkpointTampered = err.message; }
// A Trellis error answer from a local stub: the SDK parses it with the contracts' zod schema
// (bundled), so a working zod import is what makes the code "app_not_found" and not "internal".
const server = createServer((_req, res) => {
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: { code: "app_not_found", message: "no such app", request_id: "req_stub" } }));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const app = sdk.createAppClient({ baseUrl: "http://127.0.0.1:" + server.address().port, appId: "app_x", token: "trl_app_stub" });
const err = await app.submissions.get("sub_x").then(() => null, (e) => e);
server.close();
console.log(JSON.stringify({
  resolved: import.meta.resolve("@trellis/sdk"),
  execArgv: process.execArgv,
  nodeOptions: process.env.NODE_OPTIONS ?? null,
  exports: Object.keys(sdk).sort(),
  inclusion: sdk.verifyInclusion(inc.leafIdx, inc.treeSize, b64(inc.leafHash), incProof, b64(inc.root)),
  inclusionFlipped: sdk.verifyInclusion(inc.leafIdx, inc.treeSize, b64(inc.leafHash), flip(incProof, 0), b64(inc.root)),
  inclusionVectorTampered: sdk.verifyInclusion(bad.leafIdx, bad.treeSize, b64(bad.leafHash), bad.proof.map(b64), b64(bad.root)),
  consistency: sdk.verifyConsistency(con.size1, con.size2, conProof, b64(con.root1), b64(con.root2)),
  consistencyFlipped: sdk.verifyConsistency(con.size1, con.size2, flip(conProof, conProof.length - 1), b64(con.root1), b64(con.root2)),
  checkpoint: { origin: checkpoint.origin, treeSize: checkpoint.treeSize, rootHash: Buffer.from(checkpoint.rootHash).toString("base64") },
  checkpointTampered,
  clients: [typeof sdk.createAppClient, typeof sdk.createAdminClient, typeof app.submissions.create],
  apiError: { isTrellisApiError: err instanceof sdk.TrellisApiError, status: err?.status, code: err?.code, requestId: err?.requestId },
}));
`;

// A TypeScript consumer under Node's own resolution (NodeNext): the packed declarations must
// resolve without @trellis/contracts, and be real types (the @ts-expect-error must be needed).
const CONSUMER_TS = `
import { type App, createAppClient, TrellisApiError, verifyInclusion } from "@trellis/sdk";
import { leafHash } from "@trellis/sdk/verify";

const client = createAppClient({ baseUrl: "http://127.0.0.1:8080", appId: "app_1", token: "t" });
export const created: Promise<{ id: string }> = client.submissions.create({ payload: {} });
export const ok: boolean = verifyInclusion(0, 1, leafHash(new Uint8Array()), [], new Uint8Array(32));
export const code = (e: unknown) => (e instanceof TrellisApiError ? e.code : null);
// @ts-expect-error an app's name is a string (so App is a real type, not any)
export const name: App["name"] = 1;
// @ts-expect-error a base URL is a string
createAppClient({ baseUrl: 8080, appId: "app_1", token: "t" });
`;

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, "utf8")) as T;

/** Plain Node: only the flags given here, and an environment without NODE_OPTIONS. */
function plainNode(args: string[], cwd: string) {
  // Node 22.6+ can run .ts itself (type stripping); turned off, a .ts import fails on any Node.
  const noTs = process.allowedNodeEnvironmentFlags.has("--experimental-strip-types")
    ? ["--no-experimental-strip-types"]
    : [];
  return spawnSync(process.execPath, [...noTs, ...args], {
    cwd,
    encoding: "utf8",
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir() },
  });
}

let work: string;
let project: string;
let pack: PackResult;
let manifest: PackedManifest;
let input: string;
let signed: { note: string; rootHash: string };

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "trellis-sdk-pack-"));
  const r = spawnSync("npm", ["pack", "--json", "-w", "@trellis/sdk", "--pack-destination", work], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 170_000,
  });
  expect(r.status, `${r.stderr}\n${r.stdout}`).toBe(0);
  pack = (JSON.parse(r.stdout) as PackResult[])[0] as PackResult;

  // A consumer's project: the tarball unpacked as node_modules/@trellis/sdk, and beside it only
  // the dependencies its package.json declares (linked from the repo, so no network is needed).
  project = join(work, "consumer");
  const installed = join(project, "node_modules/@trellis/sdk");
  mkdirSync(installed, { recursive: true });
  const tar = spawnSync(
    "tar",
    ["-xzf", join(work, pack.filename), "-C", installed, "--strip-components=1"],
    { encoding: "utf8" },
  );
  expect(tar.status, tar.stderr).toBe(0);
  manifest = readJson<PackedManifest>(join(installed, "package.json"));
  for (const dep of [...Object.keys(manifest.dependencies ?? {}), "@types/node"]) {
    mkdirSync(dirname(join(project, "node_modules", dep)), { recursive: true });
    symlinkSync(join(ROOT, "node_modules", dep), join(project, "node_modules", dep), "dir");
  }
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module" }),
  );

  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = new Uint8Array(
    Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url"),
  );
  const signer = noteSignerFromKey("trellis-audit/plain-node", privateKey, raw);
  const inclusion = readJson<{ root: string }>(join(VECTORS, "inclusion/1/happy-path.json"));
  signed = { note: signer.signCheckpoint(8, Buffer.from(inclusion.root, "base64")), rootHash: "" };
  signed.rootHash = inclusion.root;
  input = join(work, "input.json");
  writeFileSync(
    input,
    JSON.stringify({
      inclusion,
      inclusionTampered: readJson(join(VECTORS, "inclusion/1/modified-proof[0]-bit-@3.json")),
      consistency: readJson(join(VECTORS, "consistency/3/happy-path.json")),
      note: signed.note,
      verifierKey: signer.verifierKey,
    }),
  );
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function expectVerified(c: Checked) {
  // The flags given and nothing else (no --import tsx, no loader, no extra conditions).
  expect(c.execArgv.filter((a) => a !== "--no-experimental-strip-types")).toEqual([
    "--input-type=module",
    "-e",
    CHECK,
  ]);
  expect(c.nodeOptions).toBeNull();
  expect(c.exports).toEqual(
    expect.arrayContaining([
      "verifyInclusion",
      "verifyConsistency",
      "verifyCheckpoint",
      "createAdminClient",
      "createAppClient",
      "TrellisApiError",
    ]),
  );
  expect(c).toMatchObject({
    inclusion: true,
    inclusionFlipped: false,
    inclusionVectorTampered: false,
    consistency: true,
    consistencyFlipped: false,
    checkpoint: { origin: "trellis-audit/plain-node", treeSize: 8, rootHash: signed.rootHash },
    clients: ["function", "function", "function"],
    apiError: {
      isTrellisApiError: true,
      status: 404,
      code: "app_not_found",
      requestId: "req_stub",
    },
  });
  expect(c.checkpointTampered).not.toBe("accepted");
}

describe("@trellis/sdk from plain Node ESM", () => {
  it("packs only what a consumer needs, with no private dependency", () => {
    const files = pack.files.map((f) => f.path).sort();
    expect(files.filter((f) => f.startsWith("test/") || f.includes("/test/"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files).toEqual(
      expect.arrayContaining([
        "package.json",
        "README.md",
        "dist/index.js",
        "dist/index.d.ts",
        "src/verify.js",
        "src/verify.d.ts",
      ]),
    );
    expect(
      files.filter((f) => !/^(dist\/|src\/verify\.(js|d\.ts)$|package\.json$|README\.md$)/.test(f)),
    ).toEqual([]);
    const deps = {
      ...manifest.dependencies,
      ...manifest.peerDependencies,
      ...manifest.optionalDependencies,
    };
    expect(Object.keys(deps).filter((d) => d.startsWith("@trellis/"))).toEqual([]);
    // zod at the version the contracts (bundled into dist/) are written against.
    const contracts = readJson<PackedManifest>(join(ROOT, "packages/contracts/package.json"));
    expect(manifest.dependencies).toEqual({ zod: contracts.dependencies?.zod });
  });

  it("dist/index.js imports nothing but zod and the verifier file", () => {
    const bundle = readFileSync(join(project, "node_modules/@trellis/sdk/dist/index.js"), "utf8");
    // esbuild writes one static import or re-export statement per module, ending in `from "x";`
    const specifiers = [...bundle.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)";$/gm)].map(
      (m) => m[1],
    );
    expect(new Set(specifiers)).toEqual(new Set(["zod", "../src/verify.js"]));
    expect(bundle).not.toMatch(/\bimport\s*\(|\brequire\s*\(/);
  });

  it("verifies RFC 6962 vectors and a signed checkpoint from the packed tarball in a project outside the repo", () => {
    const r = plainNode(["--input-type=module", "-e", CHECK, input], project);
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as Checked;
    expect(c.resolved).toBe(
      new URL("node_modules/@trellis/sdk/dist/index.js", `file://${project}/`).href,
    );
    expectVerified(c);
  });

  it("works the same from the repo's own node_modules after `npm ci`", () => {
    const r = plainNode(["--input-type=module", "-e", CHECK, input], ROOT);
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as Checked;
    expect(c.resolved).toBe(new URL("packages/sdk/dist/index.js", `file://${ROOT}`).href);
    expectVerified(c);
  });

  it("type-checks a TypeScript consumer against the packed declarations (NodeNext)", () => {
    writeFileSync(join(project, "consumer.ts"), CONSUMER_TS);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          strict: true,
          noEmit: true,
          types: ["node"],
          // Not zod's or Node's own declarations: those are theirs (and take most of a minute).
          skipLibCheck: true,
        },
        files: ["consumer.ts"],
      }),
    );
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const r = spawnSync(process.execPath, [tsc, "-p", project, "--listFiles"], {
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // With skipLibCheck a declaration import that does not resolve would only be an any; the
    // program's files show that they all resolved, to the package's own files.
    const listed = r.stdout.split("\n").map((l) => l.trim());
    const pkg = join(project, "node_modules/@trellis/sdk");
    for (const f of ["dist/index.d.ts", "dist/contracts/api.d.ts", "src/verify.d.ts"])
      expect(listed).toContain(join(pkg, f));
    expect(listed.filter((l) => l.startsWith(join(ROOT, "packages")))).toEqual([]);
  }, 130_000);
});
