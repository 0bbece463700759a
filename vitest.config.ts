import { defaultClientConditions, defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// Workspace packages that also ship a build (@trellis/sdk's dist/) export their TypeScript
// source under this condition: tests always run the source, never a stale or missing build.
// Vitest runs test files in Vite's server (ssr) environment and passes these conditions to
// its worker processes as --conditions; the defaults are kept after it.
const SOURCE = "trellis-source";

export default defineConfig({
  resolve: { conditions: [SOURCE, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [SOURCE, ...defaultServerConditions] } },
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
