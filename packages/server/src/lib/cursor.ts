import { TrellisError } from "./errors";

/**
 * Opaque pagination cursors: base64url of a small JSON object. Callers treat them as opaque;
 * decoding validates the shape so a forged cursor is a 400, not a query error.
 */
export const encodeCursor = (value: Record<string, string | number>): string =>
  Buffer.from(JSON.stringify(value)).toString("base64url");

export function decodeCursor<K extends string>(
  raw: string,
  keys: Record<K, "string" | "number">,
): Record<K, string | number> | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const out = {} as Record<K, string | number>;
    for (const [k, type] of Object.entries(keys) as [K, string][]) {
      const v = (parsed as Record<string, unknown>)[k];
      if (typeof v !== type) return undefined;
      if (typeof v === "string" && v.length > 100) return undefined;
      // Every number in this API's cursors is a row's seq: 1e30, 1.5 or 1e400 (Infinity) would
      // reach PostgreSQL's bigint and fail there as a 500.
      if (typeof v === "number" && !Number.isSafeInteger(v)) return undefined;
      out[k] = v as string | number;
    }
    return out;
  } catch {
    return undefined;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The record id in a list cursor (`{id}`, as the gateway's newest-first lists encode it), or
 * undefined for no cursor; anything else is an `invalid_request` naming `/cursor`.
 */
export function recordIdFromCursor(cursor: string | undefined): string | undefined {
  if (!cursor) return undefined;
  const c = decodeCursor(cursor, { id: "string" });
  if (!c || !UUID.test(c.id as string))
    throw new TrellisError("invalid_request", [
      { path: "/cursor", message: "is not a cursor from this API" },
    ]);
  return c.id as string;
}

/**
 * The audit seq in a list cursor (`{seq}`, as `GET /admin/v1/audit` encodes it), or undefined
 * for no cursor; anything else, a seq below 1 included, is an `invalid_request` naming `/cursor`.
 */
export function seqFromCursor(cursor: string | undefined): number | undefined {
  if (!cursor) return undefined;
  const c = decodeCursor(cursor, { seq: "number" });
  if (!c || (c.seq as number) < 1)
    throw new TrellisError("invalid_request", [
      { path: "/cursor", message: "is not a cursor from this API" },
    ]);
  return c.seq as number;
}
