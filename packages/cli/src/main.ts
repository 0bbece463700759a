#!/usr/bin/env node
import { run } from "./cli";

run(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`trellis: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
