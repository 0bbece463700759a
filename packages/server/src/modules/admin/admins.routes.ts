import {
  AdminCreated,
  AdminList,
  AdminParams,
  type AdminRole,
  type AdminView,
  CreateAdminRequest,
} from "@trellis/contracts";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Db } from "../../db/db";
import { auditContext } from "../../http/context";
import type { Clock } from "../../lib/clock";
import { TrellisError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { randomSecret, sha256Hex } from "../../lib/secrets";
import type { AuditService } from "../audit/audit.service";

interface Row {
  id: string;
  name: string | null;
  roles: AdminRole[];
  created_at: Date;
  created_by: string | null;
  revoked_at: Date | null;
}
const view = (r: Row): AdminView => ({
  id: r.id,
  name: r.name,
  roles: r.roles,
  created_at: r.created_at.toISOString(),
  created_by: r.created_by,
  revoked_at: r.revoked_at?.toISOString() ?? null,
});
const COLUMNS = "id, name, roles, created_at, created_by, revoked_at";

/**
 * Credentials for the people on the control plane (`/admin/v1/admins`): each person gets their
 * own token and roles, so a steward's approval is a different person's, by name, in the log.
 */
export const adminsRoutes: FastifyPluginAsyncZod<{
  db: Db;
  clock: Clock;
  audit: Pick<AuditService, "record">;
}> = async (app, { db, clock, audit }) => {
  const resourceType = "admin";

  app.post(
    "/admins",
    {
      schema: { body: CreateAdminRequest, response: { 201: AdminCreated } },
      config: { action: "admin.create", resourceType },
    },
    async (req, reply) => {
      const token = randomSecret("trl_admin");
      const id = newId("admin");
      const row = await db.transaction(async (tx) => {
        const { rows } = await tx.query<Row>(
          `INSERT INTO trellis.admin_credentials (id, token_sha256, created_at, name, roles, created_by)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
          [
            id,
            sha256Hex(token),
            clock.now(),
            req.body.name,
            [...new Set(req.body.roles)],
            req.trellis.actorId,
          ],
        );
        await audit.record(
          auditContext(req.trellis),
          { action: "admin.create", resourceType, resourceId: id, diff: { roles: req.body.roles } },
          tx,
        );
        return rows[0] as Row;
      });
      req.trellis.audited = true;
      return reply.code(201).send({ ...view(row), token });
    },
  );

  app.get(
    "/admins",
    { schema: { response: { 200: AdminList } }, config: { action: "admin.list", resourceType } },
    async (req) => {
      const { rows } = await db.query<Row>(
        `SELECT ${COLUMNS} FROM trellis.admin_credentials ORDER BY created_at, id`,
      );
      await audit.record(auditContext(req.trellis), { action: "admin.list", resourceType });
      req.trellis.audited = true;
      return { items: rows.map(view) };
    },
  );

  app.delete(
    "/admins/:id",
    {
      schema: { params: AdminParams, response: { 204: z.null() } },
      config: { action: "admin.revoke", resourceType },
    },
    async (req, reply) => {
      // Nobody locks themselves (and possibly everyone) out by revoking the credential in use.
      if (req.trellis.actorId === `admin:${req.params.id}`) throw new TrellisError("forbidden");
      await db.transaction(async (tx) => {
        const { rowCount } = await tx.query(
          "UPDATE trellis.admin_credentials SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
          [req.params.id, clock.now()],
        );
        if (rowCount === 0) throw new TrellisError("not_found");
        await audit.record(
          auditContext(req.trellis),
          { action: "admin.revoke", resourceType, resourceId: req.params.id },
          tx,
        );
      });
      req.trellis.audited = true;
      return reply.code(204).send(null);
    },
  );
};
