import {
  ApprovalRequestRecord,
  Booking,
  BookingPage,
  type CreateBookingRequest,
  Entry,
  EventPage,
  Item,
  ItemPage,
  LogEvent,
  RequestPage,
  type RequestState,
  Submission,
  SubmissionPage,
} from "@trellis/contracts";
import { TrellisApiError } from "./errors";
import { type ConnectionOptions, connection, segment, send } from "./http";

/** Options of {@link createAppClient}: the server, the app, and an app token issued for it. */
export interface AppClientOptions extends ConnectionOptions {
  appId: string;
}

/** A new submission: the payload must match the app's schema; `form_id` defaults to "default". */
export interface NewSubmission {
  form_id?: string;
  payload: Record<string, unknown>;
}

/** Filters and paging of a submissions list. `limit` is 1–200 (default 50). */
export interface ListSubmissionsOptions {
  limit?: number;
  cursor?: string;
  form_id?: string;
}

/** A micro-app's API (`/api/v1/apps/{appId}`), authenticated with an app token. */
export interface AppClient {
  readonly appId: string;
  submissions: {
    /**
     * Submits an entry; needs scope `create`. A payload that does not match the app's schema
     * rejects with code `payload_invalid` and `issues`.
     * @example const s = await app.submissions.create({ payload: { email: "ana@example.org" } });
     */
    create(req: NewSubmission): Promise<Submission>;
    /**
     * One page, newest first; needs `read` (own entries) or `read:all`.
     * @example const { items, next_cursor } = await app.submissions.list({ limit: 20 });
     */
    list(query?: ListSubmissionsOptions): Promise<SubmissionPage>;
    /**
     * One entry; `not_found` when it is absent, deleted, or not visible to this token.
     * @example const s = await app.submissions.get("0197c6a2-…");
     */
    get(id: string): Promise<Submission>;
    /**
     * Deletes (softly) one entry; needs scope `delete`.
     * @example await app.submissions.delete(s.id);
     */
    delete(id: string): Promise<void>;
    /**
     * Every entry visible to the token, newest first, fetching page after page (`limit` is the
     * page size) as the loop asks for more.
     * @example for await (const s of app.submissions.all({ limit: 100 })) console.log(s.id);
     */
    all(
      query?: Omit<ListSubmissionsOptions, "cursor">,
    ): AsyncGenerator<Submission, void, undefined>;
  };
  /** event-log apps. */
  events: {
    /**
     * Appends an event (scope `append`); resolves with its number `seq`.
     * @example const { seq } = await app.events.append({ type: "door.opened", data: { door: "front" } });
     */
    append(req: { type: string; data: Record<string, unknown> }): Promise<LogEvent>;
    /**
     * Events after `after` (default 0), oldest first; pass `next_after` back for the next page.
     * @example const { items, next_after } = await app.events.list({ after: 0, limit: 100 });
     */
    list(query?: { after?: number; limit?: number }): Promise<EventPage>;
  };
  /** directory apps. */
  items: {
    /** @example const item = await app.items.create({ kind: "room", attrs: { name: "Blue" } }); */
    create(req: { kind: string; attrs: Record<string, unknown> }): Promise<Item>;
    /**
     * Newest first, by kind and attribute equality.
     * @example await app.items.list({ kind: "room", attrs: { color: "blue" } })
     */
    list(query?: {
      kind?: string;
      attrs?: Record<string, string | number | boolean>;
      limit?: number;
      cursor?: string;
    }): Promise<ItemPage>;
    /** @example await app.items.get(item.id) */
    get(id: string): Promise<Item>;
    /**
     * Merges attributes (scope `update`): keys given replace, `null` removes one.
     * @example await app.items.update(item.id, { seats: 10, color: null })
     */
    update(id: string, attrs: Record<string, unknown>): Promise<Item>;
    /** @example await app.items.delete(item.id) */
    delete(id: string): Promise<void>;
  };
  /** ttl-cache apps. */
  entries: {
    /**
     * Stores or replaces an entry for `ttl_seconds` (scope `put`); `quota_exceeded` when full.
     * @example await app.entries.put("session:42", { user: "ana" }, 600)
     */
    put(key: string, value: Record<string, unknown>, ttlSeconds: number): Promise<Entry>;
    /** An entry; `not_found` once it has expired. @example await app.entries.get("session:42") */
    get(key: string): Promise<Entry>;
  };
  /** bookings apps. */
  bookings: {
    /**
     * Books `resource` for `[starts_at, ends_at)` (scope `create`; ISO 8601 with an offset, at
     * most 31 days). A slot overlapping a live booking of that resource rejects with code
     * `booking_conflict`.
     * @example await app.bookings.create({ resource: "Room 1", starts_at: "2030-03-02T10:00:00Z", ends_at: "2030-03-02T11:00:00Z" })
     */
    create(req: CreateBookingRequest): Promise<Booking>;
    /**
     * Live bookings, newest first, of one `resource` and overlapping `[from, to)` (each optional).
     * @example await app.bookings.list({ resource: "Room 1", from: "2030-03-02T00:00:00Z", to: "2030-03-03T00:00:00Z" })
     */
    list(query?: {
      resource?: string;
      from?: string;
      to?: string;
      limit?: number;
      cursor?: string;
    }): Promise<BookingPage>;
    /** @example await app.bookings.get(b.id) */
    get(id: string): Promise<Booking>;
    /**
     * Cancels a booking (scope `cancel`), which frees its time; it cannot be undone.
     * @example await app.bookings.cancel(b.id)
     */
    cancel(id: string): Promise<void>;
  };
  /** approval-queue apps. */
  requests: {
    /**
     * Files a request (scope `create`) for `assigned_reviewer`, who is not you.
     * @example const r = await app.requests.create({ payload: { title: "Laptop" }, assigned_reviewer: "rita" });
     */
    create(req: {
      payload: Record<string, unknown>;
      assigned_reviewer: string;
    }): Promise<ApprovalRequestRecord>;
    /**
     * Newest first; `role: "reviewer"` lists the ones assigned to you, `state` one state.
     * @example await app.requests.list({ role: "reviewer", state: "requested" })
     */
    list(query?: {
      role?: "requester" | "reviewer";
      state?: RequestState;
      limit?: number;
      cursor?: string;
    }): Promise<RequestPage>;
    /** @example await app.requests.get(r.id) */
    get(id: string): Promise<ApprovalRequestRecord>;
    /**
     * Moves a request: the reviewer to `reviewing`, `approved`, `rejected` (scope `review`), the
     * requester to `withdrawn` (scope `withdraw`). An illegal move rejects with code
     * `transition_not_allowed` and `allowed` listing the moves you have.
     * @example await app.requests.transition(r.id, "approved")
     */
    transition(id: string, to: RequestState): Promise<ApprovalRequestRecord>;
  };
}

/**
 * A client for one app's gateway API. Throws a TypeError for an unusable base URL, token or
 * app id; every call resolves with the contract's type or rejects with a `TrellisApiError`.
 *
 * @example
 * import { createAppClient } from "@trellis/sdk";
 * const app = createAppClient({ baseUrl: "http://127.0.0.1:8080", appId: "app_01jf9x…", token });
 * await app.submissions.create({ payload: { email: "ana@example.org" } });
 * for await (const s of app.submissions.all()) console.log(s.created_at, s.payload);
 */
export function createAppClient(options: AppClientOptions): AppClient {
  const conn = connection(options);
  const appPath = `/api/v1/apps/${segment(options.appId, "appId")}`;
  const base = `${appPath}/submissions`;

  const list = (query: ListSubmissionsOptions = {}) =>
    send(conn, {
      method: "GET",
      path: base,
      query: { limit: query.limit, cursor: query.cursor, form_id: query.form_id },
      parse: SubmissionPage,
    });

  async function* all(query: Omit<ListSubmissionsOptions, "cursor"> = {}) {
    let cursor: string | undefined;
    const seen = new Set<string>();
    do {
      const page = await list({ ...query, cursor });
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
      if (cursor !== undefined) {
        // A server that hands back a cursor twice would loop forever; fail loudly instead.
        if (seen.has(cursor)) {
          throw new TrellisApiError({
            status: 200,
            code: "internal",
            message: "The server repeated a page cursor.",
            requestId: null,
          });
        }
        seen.add(cursor);
      }
    } while (cursor !== undefined);
  }

  return {
    appId: options.appId,
    submissions: {
      create: (req) => send(conn, { method: "POST", path: base, body: req, parse: Submission }),
      list,
      get: async (id) =>
        send(conn, {
          method: "GET",
          path: `${base}/${segment(id, "submission id")}`,
          parse: Submission,
        }),
      delete: async (id) =>
        send<void>(conn, { method: "DELETE", path: `${base}/${segment(id, "submission id")}` }),
      all,
    },
    events: {
      append: (req) =>
        send(conn, { method: "POST", path: `${appPath}/events`, body: req, parse: LogEvent }),
      list: (query = {}) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/events`,
          query: { after: query.after, limit: query.limit },
          parse: EventPage,
        }),
    },
    items: {
      create: (req) =>
        send(conn, { method: "POST", path: `${appPath}/items`, body: req, parse: Item }),
      list: (query = {}) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/items`,
          query: {
            kind: query.kind,
            limit: query.limit,
            cursor: query.cursor,
            ...Object.fromEntries(
              Object.entries(query.attrs ?? {}).map(([k, v]) => [`attr.${k}`, String(v)]),
            ),
          },
          parse: ItemPage,
        }),
      get: async (id) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/items/${segment(id, "item id")}`,
          parse: Item,
        }),
      update: async (id, attrs) =>
        send(conn, {
          method: "PATCH",
          path: `${appPath}/items/${segment(id, "item id")}`,
          body: { attrs },
          parse: Item,
        }),
      delete: async (id) =>
        send<void>(conn, { method: "DELETE", path: `${appPath}/items/${segment(id, "item id")}` }),
    },
    entries: {
      put: async (key, value, ttlSeconds) =>
        send(conn, {
          method: "PUT",
          path: `${appPath}/entries/${segment(key, "key")}`,
          body: { value, ttl_seconds: ttlSeconds },
          parse: Entry,
        }),
      get: async (key) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/entries/${segment(key, "key")}`,
          parse: Entry,
        }),
    },
    bookings: {
      create: (req) =>
        send(conn, { method: "POST", path: `${appPath}/bookings`, body: req, parse: Booking }),
      list: (query = {}) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/bookings`,
          query: {
            resource: query.resource,
            from: query.from,
            to: query.to,
            limit: query.limit,
            cursor: query.cursor,
          },
          parse: BookingPage,
        }),
      get: async (id) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/bookings/${segment(id, "booking id")}`,
          parse: Booking,
        }),
      cancel: async (id) =>
        send<void>(conn, {
          method: "DELETE",
          path: `${appPath}/bookings/${segment(id, "booking id")}`,
        }),
    },
    requests: {
      create: (req) =>
        send(conn, {
          method: "POST",
          path: `${appPath}/requests`,
          body: req,
          parse: ApprovalRequestRecord,
        }),
      list: (query = {}) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/requests`,
          query: { role: query.role, state: query.state, limit: query.limit, cursor: query.cursor },
          parse: RequestPage,
        }),
      get: async (id) =>
        send(conn, {
          method: "GET",
          path: `${appPath}/requests/${segment(id, "request id")}`,
          parse: ApprovalRequestRecord,
        }),
      transition: async (id, to) =>
        send(conn, {
          method: "POST",
          path: `${appPath}/requests/${segment(id, "request id")}/transitions`,
          body: { to },
          parse: ApprovalRequestRecord,
        }),
    },
  };
}
