import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../db/database.js';
import { errors } from '../http/errors.js';
import { errorResponse } from '../secrets/schemas.js';
import { rowDigest } from './chain.js';
import type { AuditRepository, AuditRow } from './repository.js';
import type { AuditSealer } from './sealer.js';

const auditEntry = z
  .object({
    id: z.string().meta({ description: 'Position in insertion order (a decimal integer)' }),
    at: z.iso.datetime(),
    actor: z.string().meta({ description: 'admin:<sub>, access_key:<id> or anonymous' }),
    action: z.string(),
    key: z.string().nullable(),
    version: z.number().int().nullable(),
    outcome: z.string(),
    requestId: z.string().nullable(),
    clientIp: z.string().nullable(),
    sealed: z.boolean().meta({ description: 'Whether a seal of the hash chain covers the row yet' }),
    hash: z.string().nullable().meta({
      description: "SHA-256 (hex) of the row's canonical content once sealed; the seal's hash covers it",
    }),
  })
  .meta({ id: 'AuditEntry' });

const date = (name: string) =>
  z.iso
    .datetime({ offset: true, error: `${name} must be an ISO 8601 date-time with a time zone` })
    .transform((s) => new Date(s))
    .optional();

const auditQuery = z.object({
  key: z.string().max(200).optional(),
  actor: z.string().max(300).optional(),
  action: z.string().max(64).optional(),
  from: date('from'),
  to: date('to'),
  limit: z.coerce
    .number({ error: 'limit must be a whole number from 1 to 1000' })
    .int({ error: 'limit must be a whole number from 1 to 1000' })
    .min(1, { error: 'limit must be a whole number from 1 to 1000' })
    .max(1000, { error: 'limit must be a whole number from 1 to 1000' })
    .optional(),
  cursor: z.string().max(200).optional(),
});

const toEntry = (r: AuditRow) => ({
  id: r.id,
  at: r.at.toISOString(),
  actor: r.actor,
  action: r.action,
  key: r.key,
  version: r.version,
  outcome: r.outcome,
  requestId: r.request_id,
  clientIp: r.client_ip,
  sealed: r.sealed,
  hash: r.sealed ? rowDigest(r).toString('hex') : null,
});

const encodeCursor = (id: string) => Buffer.from(`a1:${id}`).toString('base64url');
function decodeCursor(cursor: string): string {
  const m = /^a1:([1-9][0-9]{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m?.[1])
    throw errors.invalidInput('Invalid cursor: pass the nextCursor value of a previous page unchanged');
  return m[1];
}

/** GET /api/audit and /api/audit/verify: admin JWT only (the guard's default for routes without config.access). */
export async function auditRoutes(
  app: FastifyInstance,
  opts: { db: Database; repo: AuditRepository; sealer: AuditSealer },
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Audit'];
  const errs = {
    400: errorResponse,
    401: errorResponse,
    403: errorResponse,
    429: errorResponse,
    503: errorResponse,
  };

  r.get(
    '/api/audit',
    {
      schema: {
        tags,
        summary: 'Read the audit log',
        description:
          'Newest first, filtered by key, actor, action and time [from, to); follow nextCursor for more.',
        querystring: auditQuery,
        response: {
          200: z.object({ entries: z.array(auditEntry), nextCursor: z.string().nullable() }),
          ...errs,
        },
      },
    },
    async (req) => {
      const q = req.query;
      const limit = q.limit ?? 100;
      const rows = await opts.repo.list(opts.db, {
        limit,
        beforeId: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
        key: q.key,
        actor: q.actor,
        action: q.action,
        from: q.from,
        to: q.to,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        entries: page.map(toEntry),
        nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null,
      };
    },
  );

  r.get(
    '/api/audit/verify',
    {
      schema: {
        tags,
        summary: 'Verify the audit hash chain',
        description:
          'Seals every row committed before the call, then recomputes the chain of seals from the archived anchor (or the start): reports intact, or the first row or seal that does not match (rows edited, removed, inserted or reordered; seals edited, removed or reordered; the chain cut at its end).',
        response: {
          200: z.object({
            intact: z.boolean(),
            checked: z.number().int(),
            seals: z.number().int().meta({ description: 'Seals checked' }),
            firstBrokenId: z.string().nullable(),
            firstBrokenSeal: z
              .string()
              .nullable()
              .meta({ description: 'The first seal that does not match or is missing' }),
            reason: z.string().nullable(),
            anchorSeal: z.string().meta({
              description: 'The last archived seal verification started from ("0": the start of the chain)',
            }),
          }),
          ...errs,
        },
      },
    },
    async () => opts.sealer.verify(),
  );
}
