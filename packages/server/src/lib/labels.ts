import { TrellisError } from "./errors";

/**
 * Row labels: a token's `{"team": "hr"}` and a record's labels, kept as sorted "key=value"
 * strings (the form Cedar sets and PostgreSQL arrays compare). Keys and values are restricted
 * so that "=" and " " can never be ambiguous.
 */
const KEY = /^[a-z][a-z0-9_-]{0,31}$/;
const VALUE = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_LABELS = 8;

/** Validates and flattens labels; throws labels_invalid naming each bad entry. */
export function labelsToSet(
  labels: Record<string, string> | undefined,
  path = "/labels",
): string[] {
  const entries = Object.entries(labels ?? {});
  const issues = entries
    .filter(([k, v]) => !KEY.test(k) || !VALUE.test(v))
    .map(([k]) => ({
      path: `${path}/${k.slice(0, 32)}`,
      message: "keys: a-z, 0-9, _ and - (up to 32); values: letters, digits, _ . - (up to 64)",
    }));
  if (entries.length > MAX_LABELS) issues.push({ path, message: `at most ${MAX_LABELS} labels` });
  if (issues.length > 0) throw new TrellisError("labels_invalid", issues);
  return entries.map(([k, v]) => `${k}=${v}`).sort();
}

/** The inverse of labelsToSet, for responses. */
export function setToLabels(set: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of set) {
    const i = entry.indexOf("=");
    if (i > 0) out[entry.slice(0, i)] = entry.slice(i + 1);
  }
  return out;
}

/** True when every entry has the "key=value" shape labelsToSet produces (for token claims). */
export const isLabelSet = (xs: unknown): xs is string[] =>
  Array.isArray(xs) &&
  xs.length <= MAX_LABELS &&
  xs.every((x) => {
    if (typeof x !== "string") return false;
    const i = x.indexOf("=");
    return i > 0 && KEY.test(x.slice(0, i)) && VALUE.test(x.slice(i + 1));
  });
