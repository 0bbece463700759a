import { PassThrough } from "node:stream";

/**
 * A stream written line by line with backpressure: `write` resolves when the reader has room
 * (and rejects once the reader went away), so a long export holds at most one buffer of lines.
 * `onBytes` sees every byte written (for a running hash).
 */
export function lineStream(onBytes?: (bytes: Buffer) => void) {
  const stream = new PassThrough();
  const write = async (line: string): Promise<void> => {
    const bytes = Buffer.from(`${line}\n`, "utf8");
    onBytes?.(bytes);
    if (stream.write(bytes)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        stream.off("close", onClose);
        resolve();
      };
      const onClose = () => {
        stream.off("drain", onDrain);
        reject(new Error("the client stopped reading"));
      };
      stream.once("drain", onDrain);
      stream.once("close", onClose);
    });
  };
  return { stream, write };
}
