import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// Workspace packages that also ship a build (@trellis/sdk's dist/) export their TypeScript
// source under this condition: tests always run the source, never a stale or missing build.
// Vitest runs test files in Vite's server (ssr) environment and passes its conditions to the
// worker processes as --conditions. After ours come vitest's own defaults, unchanged: Vite's
// server conditions without "module" (bundler-only ESM that Node itself must not pick).
const SOURCE = "trellis-source";
const conditions = [SOURCE, ...defaultServerConditions.filter((c) => c !== "module")];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: [
      "packages/*/src/**/*.test.ts",
      "packages/*/test/**/*.test.ts",
      "templates/**/*.test.ts",
    ],
    // PGlite boots a WASM Postgres per suite and PostgreSQL suites create a database each:
    // generous but bounded timeouts, and no more workers than this 2-core machine has.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    globalSetup: ["packages/server/test/global-setup.ts"],
  },
});
