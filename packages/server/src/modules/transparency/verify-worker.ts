import { parentPort, workerData } from "node:worker_threads";
import { openPostgres } from "../../db/postgres";
import { type CheckedPage, checkPage, leafRecords, type SubjectKeys } from "./verify-pages";

/**
 * A worker thread of `audit verify` (see verify-pool.ts): reads pages of leaves with their
 * events on its own connections and checks each leaf, and answers the tree's hashes. The main
 * thread only builds the tree from them; the two halves then run on two cores.
 */
export interface WorkerInit {
  url: string;
  personalFrom: number;
  prunedBelow: number;
}
export type WorkerRequest = { id: number; from: number; to: number };
export type WorkerReply = { id: number; page: CheckedPage } | { id: number; error: string };

const port = parentPort;
if (!port) throw new Error("verify-worker.ts runs as a worker thread");
const init = workerData as WorkerInit;
// Two connections: the next page's queries run while this thread hashes the current one.
const db = await openPostgres(init.url, 2);
const keys: SubjectKeys = new Map();
port.on("message", async (m: WorkerRequest | "close") => {
  if (m === "close") {
    await db.close();
    port.close();
    return;
  }
  try {
    const records = await leafRecords(db, keys, m.from, m.to, init.personalFrom);
    const page = checkPage(records, m.from, init.prunedBelow);
    // The hashes move to the main thread (page.hashes owns its whole buffer): no copy.
    port.postMessage({ id: m.id, page } satisfies WorkerReply, [page.hashes.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ id: m.id, error: (err as Error).message });
  }
});
