import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./app";
import { type Config, parseConfig } from "./config/config";
import type { Db } from "./db/db";
import { lockDataDir } from "./db/lock";
import { openPglite } from "./db/pglite";
import { openPostgres } from "./db/postgres";

export interface Running {
  app: FastifyInstance;
  config: Config;
  url: string;
  /** Stops accepting requests, finishes the ones in flight, closes the store, releases the lock. */
  close(): Promise<void>;
}

const printAdminToken = (token: string) =>
  process.stdout.write(
    `\n  A new admin token was generated. It is shown only this once; store it now:\n\n    ${token}\n\n` +
      "  Use it as: Authorization: Bearer <token>   (or export TRELLIS_ADMIN_TOKEN=<token> for the CLI)\n\n",
  );

/**
 * Opens the datastore the configuration names: PostgreSQL, or the embedded PGlite folder
 * under its lock (a second process on the same folder is refused at once).
 */
export async function openStore(config: Config): Promise<{
  db: Db;
  release: () => Promise<void>;
  setOnCompromised: (fn: (err: Error) => void) => void;
}> {
  if (config.databaseUrl) {
    const db = await openPostgres(config.databaseUrl, config.dbPoolSize, (err) =>
      process.stderr.write(
        `trellis: a PostgreSQL connection failed and was replaced: ${err.message}\n`,
      ),
    );
    return { db, release: async () => {}, setOnCompromised: () => {} };
  }
  let onCompromised: (err: Error) => void = (err) => {
    throw err;
  };
  const release = await lockDataDir(config.dataDir, (err) => onCompromised(err));
  try {
    const db = await openPglite(join(config.dataDir, "pgdata"));
    return { db, release, setOnCompromised: (fn) => (onCompromised = fn) };
  } catch (err) {
    await release();
    throw err;
  }
}

/** Parses the environment, opens the datastore, migrates, listens. */
export async function startServer(
  env: Record<string, string | undefined>,
  announce = printAdminToken,
): Promise<Running> {
  const config = parseConfig(env);
  const { db, release, setOnCompromised } = await openStore(config);
  setOnCompromised((err) => {
    process.stderr.write(`Lost the lock on ${config.dataDir} (${err.message}); stopping.\n`);
    process.exit(1);
  });
  let app: FastifyInstance;
  try {
    app = await buildApp({ config, db, announceAdminToken: announce });
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await db.close().catch(() => {});
    await release();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app.close();
      await db.close();
      await release();
    })());
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  return { app, config, url: `http://${config.host}:${port}`, close };
}
