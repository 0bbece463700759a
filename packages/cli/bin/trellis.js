#!/usr/bin/env node
// `npx trellis …`: the CLI is TypeScript run through tsx's loader (no build step).
import { spawnSync } from "node:child_process";
import { register as registerHooks } from "node:module";
import { fileURLToPath } from "node:url";
import { VERIFY_NODE_FLAGS } from "@trellis/server/verify-flags";
import { register } from "tsx/esm/api";

// `audit verify` runs in a child with the Node flags it is measured with (a larger young
// generation: see @trellis/server/verify-flags), flags V8 reads only at start; not when the
// caller already chose one.
const [command, sub] = process.argv.slice(2);
const flagged = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((a) =>
  a.includes("--max-semi-space-size"),
);
if (command === "audit" && sub === "verify" && !flagged) {
  const child = spawnSync(
    process.execPath,
    [
      ...VERIFY_NODE_FLAGS,
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: "inherit" },
  );
  if (child.error) throw child.error;
  process.exit(child.status ?? (child.signal === "SIGINT" ? 130 : 1));
}

register();
// Registered after tsx, so it runs first and tsx resolves with the source condition as well.
registerHooks("./source-condition.js", import.meta.url);
await import("../src/main.ts");
