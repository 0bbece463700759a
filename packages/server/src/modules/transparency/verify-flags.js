// Node flags `trellis audit verify` runs with (plain JavaScript: the CLI's bin reads it before
// any TypeScript loader is registered, and the bench starts its timed verify with the same).
// Verify makes a few short-lived strings per event and keeps a few pages of rows in flight; with
// V8's default 16 MB semi-space those pages outlive young collections and are promoted, and
// collecting them is about a fifth of verify's time. 64 MB measured 1.05-1.15x the events per
// second (docs/benchmarks.md); NODE_OPTIONS=--max-semi-space-size=N overrides it.
export const VERIFY_NODE_FLAGS = ["--max-semi-space-size=64"];
