import { defineConfig } from "vitest/config";

export default defineConfig({
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
