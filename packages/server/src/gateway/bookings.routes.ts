import {
  AppParams,
  Booking,
  BookingPage,
  BookingParams,
  CreateBookingRequest,
  ListBookingsQuery,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Db } from "../db/db";
import type { RequestContext } from "../http/context";
import type { Clock } from "../lib/clock";
import { recordIdFromCursor } from "../lib/cursor";
import { TrellisError } from "../lib/errors";
import { newRecordId } from "../lib/ids";
import { isoFromMs } from "../lib/iso";
import { setToLabels } from "../lib/labels";
import type { AuditService } from "../modules/audit/audit.service";
import type { PolicyEngine } from "../modules/policy/engine";
import { cancelBooking, createBooking, getBooking, listBookings } from "./bookings.repo";
import { governedHelpers } from "./governed";

const TEMPLATE = "bookings";

/** A validated ISO 8601 instant (any offset) as the UTC millisecond form the database keeps. */
const utc = (iso: string) => isoFromMs(Date.parse(iso));

/** The gateway routes of the bookings template. Auth (token, app, template, scope) ran in onRequest. */
export const bookingsRoutes: FastifyPluginAsyncZod<{
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
  const resourceType = "booking";
  const readScopes = ["read", "read:all", "admin:read"];

  /** The booking under RLS, then Cedar's decision on it for `action`. */
  const found = async (c: RequestContext, id: string, action: string) => {
    const rec = await getBooking(db, ctxOf(c), id);
    if (!rec) throw new TrellisError("not_found");
    return { rec, policyIds: decideFound(c, action, rec.facts) };
  };

  app.post(
    "/apps/:app/bookings",
    {
      schema: { params: AppParams, body: CreateBookingRequest, response: { 201: Booking } },
      config: { action: "booking.create", resourceType, anyScope: ["create"], template: TEMPLATE },
    },
    async (req, reply) => {
      const d = decideOn(req.trellis, "create", newRecord(req.trellis));
      req.trellis.policyIds = d.policyIds;
      if (d.decision !== "allow") throw new TrellisError("policy_denied");
      const ctx = ctxOf(req.trellis, d.policyIds);
      const id = newRecordId();
      const { resource } = req.body;
      const starts = utc(req.body.starts_at);
      const ends = utc(req.body.ends_at);
      const outcome = await createBooking(db, ctx, { id, resource, starts, ends });
      // A conflict rolled back with its event; the error handler audits the denial.
      if (outcome === "conflict") throw new TrellisError("booking_conflict");
      req.trellis.audited = true;
      return reply.code(201).send({
        id,
        app_id: ctx.app_id,
        resource,
        owner_id: ctx.sub,
        starts_at: starts,
        ends_at: ends,
        labels: setToLabels(req.trellis.claims?.labels ?? []),
        created_at: ctx.at,
      });
    },
  );

  app.get(
    "/apps/:app/bookings",
    {
      schema: { params: AppParams, querystring: ListBookingsQuery, response: { 200: BookingPage } },
      config: { action: "booking.list", resourceType, anyScope: readScopes, template: TEMPLATE },
    },
    async (req) => {
      const { limit, cursor, resource, from, to } = req.query;
      const beforeId = recordIdFromCursor(cursor);
      return listPage(req.trellis, {
        limit,
        action: "booking.list",
        resourceType,
        fetch: (ctx, n) =>
          listBookings(db, ctx, {
            resource,
            from: from && utc(from),
            to: to && utc(to),
            beforeId,
            limit: n,
          }),
        item: (r) => r.booking,
      });
    },
  );

  app.get(
    "/apps/:app/bookings/:id",
    {
      schema: { params: BookingParams, response: { 200: Booking } },
      config: { action: "booking.get", resourceType, anyScope: readScopes, template: TEMPLATE },
    },
    async (req) => {
      const { rec } = await found(req.trellis, req.params.id, "read");
      await auditedRead(req.trellis, "booking.get", resourceType, rec.booking.id);
      return rec.booking;
    },
  );

  app.delete(
    "/apps/:app/bookings/:id",
    {
      schema: { params: BookingParams, response: { 204: z.null() } },
      config: { action: "booking.cancel", resourceType, anyScope: ["cancel"], template: TEMPLATE },
    },
    async (req, reply) => {
      const { policyIds } = await found(req.trellis, req.params.id, "cancel");
      const cancelled = await cancelBooking(db, ctxOf(req.trellis, policyIds), req.params.id);
      req.trellis.audited = cancelled;
      if (!cancelled) throw new TrellisError("not_found"); // cancelled meanwhile
      return reply.code(204).send(null);
    },
  );
};
