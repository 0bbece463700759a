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
      out[k] = v as string | number;
    }
    return out;
  } catch {
    return undefined;
  }
}
