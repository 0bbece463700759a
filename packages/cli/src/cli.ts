import { describeConfig, startServer } from "@trellis/server";

const USAGE = `Usage: trellis <command>

Commands:
  start     Start the server (embedded database unless DATABASE_URL is set)
  config    Show every setting, its default and its current value
  help      Show this text
`;

/** Runs one CLI command; returns the exit code. */
export async function run(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [command = "help"] = argv;
  switch (command) {
    case "start":
      return start(env);
    case "config": {
      for (const row of describeConfig(env)) {
        process.stdout.write(`${row.name}\n  ${row.describe}\n  default: ${row.default}${row.current ? `\n  current: ${row.current}` : ""}\n\n`);
      }
      return 0;
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`trellis: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function start(env: Record<string, string | undefined>): Promise<number> {
  const running = await startServer(env);
  const store = running.config.databaseUrl ? "PostgreSQL" : `embedded PGlite in ${running.config.dataDir}`;
  process.stdout.write(`Trellis is serving on ${running.url} (${store}). Stop with Ctrl-C.\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stdout.write(`\n${signal}: closing…\n`);
      running.close().then(resolve, (err) => {
        process.stderr.write(`trellis: error while closing: ${String(err)}\n`);
        resolve();
      });
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  process.stdout.write("Closed cleanly.\n");
  return 0;
}
