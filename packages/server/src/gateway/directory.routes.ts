import {
  AppParams,
  CreateItemRequest,
  Item,
  ItemPage,
  ItemParams,
  ListItemsQuery,
  PatchItemRequest,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Db } from "../db/db";
import type { RequestContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { recordIdFromCursor } from "../lib/cursor";
import { TrellisError } from "../lib/errors";
import { newRecordId } from "../lib/ids";
import { setToLabels } from "../lib/labels";
import type { AuditService } from "../modules/audit/audit.service";
import type { PolicyEngine } from "../modules/policy/engine";
import { createItem, deleteItem, getItem, listItems, updateItem } from "./directory.repo";
import { governedHelpers } from "./governed";

const TEMPLATE = "directory";
const ATTR_NAME = /^attr\.([A-Za-z_][A-Za-z0-9_]{0,63})$/;
const MAX_ATTR_FILTERS = 5;

/** `attr.<name>=<value>` query parameters as a jsonb containment filter. */
function attrFilter(query: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const issues: Array<{ path: string; message: string }> = [];
  for (const [key, raw] of Object.entries(query)) {
    if (["limit", "cursor", "kind"].includes(key)) continue;
    const m = ATTR_NAME.exec(key);
    if (!m?.[1] || typeof raw !== "string") {
      issues.push({
        path: `/${key.slice(0, 70)}`,
        message: "is not a filter (use kind or attr.<name>)",
      });
      continue;
    }
    // Numbers and true/false match attributes of those types; anything else matches a string.
    out[m[1]] = /^-?\d{1,15}(\.\d{1,15})?$|^(true|false)$/.test(raw) ? JSON.parse(raw) : raw;
  }
  if (Object.keys(out).length > MAX_ATTR_FILTERS)
    issues.push({ path: "/", message: `at most ${MAX_ATTR_FILTERS} attr filters` });
  if (issues.length > 0) throw new TrellisError("invalid_request", issues);
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The gateway routes of the directory template. Auth (token, app, template, scope) ran in onRequest. */
/**
 * An update's audit diff: each changed attribute's old and new value, as `personal` (a directory
 * entry's attributes are about a person; the log can erase them: transparency README, Erasure).
 * Bounded below the log's 8 KB: past that, only the names of the changed attributes.
 */
export function attrsDiff(
  before: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const attrs: Record<string, { from: unknown; to: unknown }> = {};
  for (const [k, v] of Object.entries(patch)) {
    const from = before[k] ?? null;
    if (JSON.stringify(from) !== JSON.stringify(v)) attrs[k] = { from, to: v };
  }
  const diff = { personal: { attrs } };
  // jsonb's text form (what the 8 KB check measures) adds a space after each ':' and ','.
  return Buffer.byteLength(JSON.stringify(diff)) <= 5000
    ? diff
    : { personal: { changed: Object.keys(attrs) } };
}

export const directoryRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  engine: PolicyEngine;
}> = async (app, { db, clock, audit, engine }) => {
  const { ctxOf, decideOn, newRecord, decideFound, listPage, auditedRead } = governedHelpers({
    clock,
    engine,
    audit,
  });
  const resourceType = "item";
  const readScopes = ["read", "read:all", "admin:read"];

  const validate = (c: RequestContext, attrs: Record<string, unknown>) => {
    const issues = c.governed?.validatePayload(attrs);
    if (issues)
      throw new TrellisError(
        "payload_invalid",
        issues.map((i) => ({ path: `/attrs${i.path === "/" ? "" : i.path}`, message: i.message })),
      );
  };

  /** The item under RLS, then Cedar's decision on it for `action`. */
  const found = async (c: RequestContext, id: string, action: string) => {
    const rec = await getItem(db, ctxOf(c), id);
    if (!rec) throw new TrellisError("not_found");
    return { rec, policyIds: decideFound(c, action, rec.facts) };
  };

  app.post(
    "/apps/:app/items",
    {
      schema: { params: AppParams, body: CreateItemRequest, response: { 201: Item } },
      config: { action: "item.create", resourceType, anyScope: ["create"], template: TEMPLATE },
    },
    async (req, reply) => {
      validate(req.trellis, req.body.attrs);
      const d = decideOn(req.trellis, "create", newRecord(req.trellis));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const ctx = ctxOf(req.trellis, d.policyIds);
      const id = newRecordId();
      await createItem(db, ctx, { id, kind: req.body.kind, attrs: req.body.attrs });
      req.trellis.audited = true;
      return reply.code(201).send({
        id,
        app_id: ctx.app_id,
        kind: req.body.kind,
        owner_id: ctx.sub,
        attrs: req.body.attrs,
        labels: setToLabels(req.trellis.claims?.labels ?? []),
        created_at: ctx.at,
        updated_at: ctx.at,
      });
    },
  );

  app.get(
    "/apps/:app/items",
    {
      schema: { params: AppParams, querystring: ListItemsQuery, response: { 200: ItemPage } },
      config: { action: "item.list", resourceType, anyScope: readScopes, template: TEMPLATE },
    },
    async (req) => {
      const { limit, cursor, kind } = req.query;
      const attrs = attrFilter(req.query as Record<string, unknown>);
      const beforeId = recordIdFromCursor(cursor);
      return listPage(req.trellis, {
        limit,
        action: "item.list",
        resourceType,
        fetch: (ctx, n) => listItems(db, ctx, { kind, attrs, beforeId, limit: n }),
        item: (r) => r.item,
      });
    },
  );

  app.get(
    "/apps/:app/items/:id",
    {
      schema: { params: ItemParams, response: { 200: Item } },
      config: { action: "item.get", resourceType, anyScope: readScopes, template: TEMPLATE },
    },
    async (req) => {
      const { rec } = await found(req.trellis, req.params.id, "read");
      await auditedRead(req.trellis, "item.get", resourceType, rec.item.id);
      return rec.item;
    },
  );

  app.patch(
    "/apps/:app/items/:id",
    {
      schema: { params: ItemParams, body: PatchItemRequest, response: { 200: Item } },
      config: { action: "item.update", resourceType, anyScope: ["update"], template: TEMPLATE },
    },
    async (req) => {
      const { rec, policyIds } = await found(req.trellis, req.params.id, "update");
      const merged: Record<string, unknown> = { ...rec.item.attrs };
      for (const [k, v] of Object.entries(req.body.attrs)) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      validate(req.trellis, merged);
      const ctx = {
        ...ctxOf(req.trellis, policyIds),
        diff: attrsDiff(rec.item.attrs, req.body.attrs),
      };
      const updated = await updateItem(db, ctx, req.params.id, merged);
      req.trellis.audited = updated !== undefined;
      if (!updated) throw new TrellisError("not_found"); // deleted meanwhile
      return updated.item;
    },
  );

  app.delete(
    "/apps/:app/items/:id",
    {
      schema: { params: ItemParams, response: { 204: z.null() } },
      config: { action: "item.delete", resourceType, anyScope: ["delete"], template: TEMPLATE },
    },
    async (req, reply) => {
      const { policyIds } = await found(req.trellis, req.params.id, "delete");
      const deleted = await deleteItem(db, ctxOf(req.trellis, policyIds), req.params.id);
      req.trellis.audited = deleted;
      if (!deleted) throw new TrellisError("not_found");
      return reply.code(204).send(null);
    },
  );
};
