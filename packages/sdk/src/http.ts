import { ErrorBody, type ErrorCode } from "@trellis/contracts";
import { TrellisApiError } from "./errors";

/**
 * The part of a zod schema the SDK uses. Typed structurally so the SDK needs no direct
 * dependency on zod: the contracts' schemas are the only validators.
 */
export interface Parser<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false };
}

/** Where and as whom a client talks; built once by {@link connection}. */
export interface Connection {
  /** Origin plus optional path prefix, without a trailing slash. */
  readonly baseUrl: string;
  readonly authorization: string;
  readonly fetch: typeof globalThis.fetch;
}

/** Options every client takes. */
export interface ConnectionOptions {
  /** Where Trellis serves, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  baseUrl: string;
  /** The bearer token. It is sent only in the Authorization header, never in a URL. */
  token: string;
  /** A fetch implementation; defaults to the global `fetch` of Node 20 and browsers. */
  fetch?: typeof globalThis.fetch;
}

/**
 * Checks the options and prepares the Authorization header. Throws a TypeError for a base URL
 * that is not http(s) or carries credentials, a query or a fragment, and for an empty token or
 * one with spaces or control characters (the token itself never appears in the message).
 *
 * @example
 * const conn = connection({ baseUrl: "http://127.0.0.1:8080/", token: process.env.TOKEN ?? "" });
 * conn.baseUrl // "http://127.0.0.1:8080"
 */
export function connection(options: ConnectionOptions): Connection {
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    throw new TypeError(`baseUrl is not a URL: ${JSON.stringify(String(options.baseUrl))}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError("baseUrl must be an http:// or https:// URL");
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new TypeError("baseUrl must not carry credentials, a query or a fragment");
  }
  const token = options.token;
  if (typeof token !== "string" || !/^[\x21-\x7e]{1,4096}$/.test(token)) {
    throw new TypeError("token must be a non-empty string of visible ASCII characters");
  }
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== "function") throw new TypeError("no fetch implementation available");
  return {
    baseUrl: `${url.origin}${url.pathname.replace(/\/+$/, "")}`,
    authorization: `Bearer ${token}`,
    fetch: fetchImpl,
  };
}

/**
 * One path segment from a caller-supplied id, percent-encoded. Empty and dot segments are
 * refused: URL parsing would resolve `..` (even as `%2E%2E`) and send the call elsewhere.
 *
 * @example
 * segment("app_01jf9x0000000000000000000") // "app_01jf9x0000000000000000000"
 * segment("a/b") // "a%2Fb"
 */
export function segment(id: string, what = "id"): string {
  if (typeof id !== "string" || id.length === 0 || /^(\.|%2e){1,2}$/i.test(id)) {
    throw new TypeError(`${what} must be a non-empty string that is not "." or ".."`);
  }
  return encodeURIComponent(id);
}

/** One HTTP call: the path is already encoded; undefined query values are left out. */
export interface Call<T> {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** A body sent as is (e.g. a YAML policy suite), instead of JSON. */
  text?: { contentType: string; content: string };
  /** The schema of the success body; absent when the success answer has no body (204). */
  parse?: Parser<T>;
  /** Return the success body as text, unparsed (an NDJSON export). */
  raw?: true;
}

const requestIdOf = (res: Response): string | null => res.headers.get("x-request-id");

/** A TrellisApiError for an answer that is not what the contract promises. */
const unexpected = (res: Response, what: string): TrellisApiError =>
  new TrellisApiError({
    status: res.status,
    code: "internal",
    message: `Unexpected answer from the server (HTTP ${res.status}): ${what}.`,
    requestId: requestIdOf(res),
  });

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * Sends one call and returns the parsed success body, or throws a {@link TrellisApiError}.
 * Network failures (connection refused, DNS) propagate as fetch's own TypeError.
 *
 * @example
 * const app = await send(conn, { method: "GET", path: `/admin/v1/apps/${segment(id)}`, parse: App });
 */
export async function send<T>(conn: Connection, call: Call<T>): Promise<T> {
  let url = `${conn.baseUrl}${call.path}`;
  if (call.query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(call.query)) {
      if (value !== undefined) params.set(name, String(value));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const headers: Record<string, string> = {
    authorization: conn.authorization,
    accept: "application/json",
  };
  let body: string | undefined;
  if (call.text) {
    headers["content-type"] = call.text.contentType;
    body = call.text.content;
  } else if (call.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(call.body);
  }
  const res = await conn.fetch(url, { method: call.method, headers, body, redirect: "error" });
  const text = await res.text();

  if (!res.ok) {
    const json = parseJson(text);
    const parsed = json.ok ? ErrorBody.safeParse(json.value) : undefined;
    if (!parsed?.success) throw unexpected(res, "the body is not a Trellis error");
    const e = parsed.data.error;
    throw new TrellisApiError({
      status: res.status,
      code: e.code as ErrorCode,
      message: e.message,
      requestId: e.request_id,
      ...(e.issues ? { issues: e.issues } : {}),
      ...(e.allowed ? { allowed: e.allowed } : {}),
    });
  }
  if (call.raw) return text as T;
  if (!call.parse) {
    if (res.status !== 204 && text.length > 0)
      throw unexpected(res, "a body where none was expected");
    return undefined as T;
  }
  const json = parseJson(text);
  if (!json.ok) throw unexpected(res, "the body is not JSON");
  const parsed = call.parse.safeParse(json.value);
  if (!parsed.success) throw unexpected(res, "the body does not match the contract");
  return parsed.data;
}
