// Builds dist/: what plain Node (no tsx, no loader) and TypeScript consumers of @trellis/sdk
// load. Inside the monorepo only test/plain-node.test.ts reads dist/, after `npm pack` has
// rebuilt it: vitest, tsx and tsc resolve the package's "trellis-source" export condition to
// src/index.ts, so an edit to src/ is never tested against a stale dist/.
//
//   dist/index.js            one ESM file: src/ and @trellis/contracts bundled (contracts is
//                            private and never published); zod stays an import, a real dependency,
//                            and so does ../src/verify.js, the file `@trellis/sdk/verify` is, so
//                            both entry points share one copy of the verifier
//   dist/index.d.ts, …       the declarations of src/, and of contracts under dist/contracts/
//
// Run by the root `prepare` (so `npm install` / `npm ci` build it), by `npm pack` (`prepack`)
// and by `npm run build`.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

// `--if-installed` (the root's `prepare`): an install without devDependencies (`npm ci
// --omit=dev`, a server deployment) runs `prepare` too, but has no typescript; it must not fail
// for a build nothing in the repo runs. Without the flag a missing tool is an error.
const ifInstalled = process.argv.includes("--if-installed");
const esbuild = await tool("esbuild");
const ts = (await tool("typescript"))?.default;
if (!esbuild || !ts) {
  process.stderr.write(
    "@trellis/sdk: dist/ not built: esbuild or typescript is not installed (devDependencies); " +
      "`npm install`, then `npm run build`, builds it\n",
  );
  process.exit(0);
}

const SDK = dirname(fileURLToPath(import.meta.url));
const CONTRACTS = join(SDK, "../contracts");
const DIST = join(SDK, "dist");
const VERIFY = "../src/verify.js"; // from dist/
const started = Date.now();

rmSync(DIST, { recursive: true, force: true });

await esbuild.build({
  entryPoints: [join(SDK, "src/index.ts")],
  outfile: join(DIST, "index.js"),
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // zod is a dependency of the published package; everything else (src/, contracts) is ours.
  external: ["zod"],
  plugins: [
    {
      name: "verify-stays-a-file",
      setup(b) {
        b.onResolve({ filter: /^\.\/verify\.js$/ }, () => ({ path: VERIFY, external: true }));
      },
    },
  ],
  logLevel: "warning",
});

// Declarations: one program over src/index.ts with @trellis/contracts mapped to its source, so
// contracts' files are emitted too (through node_modules they would be an external library).
const config = ts.getParsedCommandLineOfConfigFile(
  join(SDK, "../../tsconfig.json"),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => fail([d]),
  },
);
const program = ts.createProgram([join(SDK, "src/index.ts")], {
  ...config.options,
  noEmit: false,
  declaration: true,
  emitDeclarationOnly: true,
  rootDir: join(SDK, ".."),
  outDir: join(DIST, ".types"),
  paths: { "@trellis/contracts": [join(CONTRACTS, "src/index.ts")] },
});
const emitted = program.emit(undefined, (file, text) => {
  const from = relative(join(DIST, ".types"), file).split(sep);
  // sdk/src/x.d.ts → dist/x.d.ts; contracts/src/x.d.ts → dist/contracts/x.d.ts
  const out =
    from[0] === "sdk" ? join(DIST, ...from.slice(2)) : join(DIST, "contracts", ...from.slice(2));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, rewriteSpecifiers(text, out));
});
const problems = emitted.diagnostics;
if (problems.length > 0) fail(problems);

// stderr: `npm pack --json` shares stdout with lifecycle scripts.
process.stderr.write(`@trellis/sdk: dist/ built in ${Date.now() - started} ms\n`);

/**
 * Node16/NodeNext consumers resolve declarations like Node resolves files: relative specifiers
 * need their extension (the sources are written for bundler resolution, without one);
 * `@trellis/contracts` is not installed next to a packed SDK, so it becomes dist/contracts/;
 * and src/verify.d.ts is where `./verify.js` is, seen from dist/.
 */
function rewriteSpecifiers(text, outFile) {
  return text.replace(/(\bfrom\s*|\bimport\s*\(\s*)(["'])([^"']+)\2/g, (whole, lead, q, spec) => {
    if (spec === "./verify.js" && dirname(outFile) === DIST) return `${lead}${q}${VERIFY}${q}`;
    if (spec === "@trellis/contracts") {
      const target = relative(dirname(outFile), join(DIST, "contracts/index.js"))
        .split(sep)
        .join("/");
      return `${lead}${q}${target.startsWith(".") ? target : `./${target}`}${q}`;
    }
    if (spec.startsWith(".") && !spec.endsWith(".js")) return `${lead}${q}${spec}.js${q}`;
    return whole;
  });
}

function fail(diagnostics) {
  const host = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => "\n",
  };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  process.exit(1);
}

async function tool(name) {
  try {
    return await import(name);
  } catch (err) {
    if (ifInstalled && err?.code === "ERR_MODULE_NOT_FOUND" && err.message.includes(`'${name}'`))
      return null;
    throw err;
  }
}
