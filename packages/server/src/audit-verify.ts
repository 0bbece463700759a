import { parseConfig } from "./config/config";
import { openStore } from "./main";
import {
  readAnchors,
  type VerifyReport,
  verifyLog,
  verifyWorkers,
} from "./modules/transparency/verify-log";

/**
 * `trellis audit verify` against the datastore the configuration names (the embedded folder
 * only while no server holds it: its lock refuses a second process), and against the anchor
 * folder it names (`TRELLIS_AUDIT_ANCHOR_DIR`). Read-only.
 */
export async function verifyStoredLog(
  env: Record<string, string | undefined>,
  opts: { verifierKey?: string; onProgress?: (done: number, total: number) => void } = {},
): Promise<VerifyReport> {
  const config = parseConfig(env);
  const { db, release } = await openStore(config);
  try {
    return await verifyLog(db, {
      ...opts,
      anchors: readAnchors(config.auditAnchorDir),
      // On PostgreSQL, pages are read and checked in worker threads on their own connections.
      workers: verifyWorkers(config.databaseUrl),
    });
  } finally {
    await db.close();
    await release();
  }
}
