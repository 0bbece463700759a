#!/usr/bin/env node
// `npx trellis …`: the CLI is TypeScript run through tsx's loader (no build step).
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
