import pg from "pg";

/**
 * Runs once before all tests. With TEST_DATABASE_URL set, PostgreSQL must answer: an
 * unreachable server fails the run instead of quietly testing PGlite alone.
 */
export default async function setup() {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    process.stdout.write(
      "\n[trellis] TEST_DATABASE_URL is not set: datastore tests run on PGlite only. " +
        "Set it (e.g. postgres://postgres@127.0.0.1:5432/test) to run them on PostgreSQL too, as .ci/run does.\n\n",
    );
    return;
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } catch (err) {
    throw new Error(`TEST_DATABASE_URL=${url} is unreachable: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
  process.stdout.write(`\n[trellis] datastore tests run on PGlite and on PostgreSQL (${url}).\n\n`);
}
