// Node flags `trellis audit verify` runs with (plain JavaScript: the CLI's bin reads it before
// any TypeScript loader is registered, and the bench starts its timed verify with the same).
// - a 64 MB semi-space: verify makes a few short-lived strings per event and keeps a few pages
//   of rows in flight; with V8's default 16 MB those pages outlive young collections and are
//   promoted, and collecting them was about a fifth of verify's time. 1.05-1.15x the events per
//   second (docs/benchmarks.md).
// - single-threaded GC: verify keeps every core busy (its worker threads and the database), so
//   V8's parallel GC helpers only took turns with them (about a tenth of the samples); each
//   worker's heap is still collected on its own thread. 1.09x (medians of 10 alternating runs).
// NODE_OPTIONS=--max-semi-space-size=N (any value) makes the CLI run verify without these.
export const VERIFY_NODE_FLAGS = ["--max-semi-space-size=64", "--single-threaded-gc"];
