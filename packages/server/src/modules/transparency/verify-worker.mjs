// Entry of an `audit verify` worker thread. Loaders registered with module.register() in the
// main thread (the CLI's tsx) do not reach worker threads, so the worker loads its TypeScript
// through tsx's scoped import (harmless when a --import loader is inherited as well).
import { tsImport } from "tsx/esm/api";

await tsImport("./verify-worker.ts", import.meta.url);
