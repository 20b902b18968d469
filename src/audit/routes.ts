import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isoDateTime } from '../dates.js';
import type { Database } from '../db/database.js';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME_RE, ENVIRONMENT_NAME_RULE } from '../environment-names.js';
import { errorResponses } from '../http/schemas.js';
import { CursorCodec, cursorSchema, limitSchema } from '../pagination.js';
import { RECORDED_TEXT_MAX } from '../storable-text.js';
import { storable } from '../zod-fields.js';
import { rowDigest } from './chain.js';
import type { AuditRepository, AuditRow } from './repository.js';
import { chainVerification } from './schemas.js';
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
    environment: z.string().nullable().meta({
      description:
        'The environment of the secret touched; null for rows without one (access keys, sign-in failures)',
    }),
    requestId: z.string().nullable(),
    clientIp: z.string().nullable(),
    sealed: z.boolean().meta({ description: 'Whether a seal of the hash chain covers the row yet' }),
    hash: z.string().nullable().meta({
      description: "SHA-256 (hex) of the row's canonical content once sealed; the seal's hash covers it",
    }),
  })
  .meta({ id: 'AuditEntry' });

const date = (name: string) => isoDateTime(name).optional();

const ACTIONS_MAX = 20;
/** One action name or several, comma-separated (action names hold no comma). */
const actionList = (name: string, description: string, example: string) =>
  storable(z.string().max(ACTIONS_MAX * 65), name)
    .transform((s) =>
      s
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== ''),
    )
    .refine((list) => list.length > 0 && list.length <= ACTIONS_MAX && list.every((a) => a.length <= 64), {
      error: `${name} must be 1 to ${ACTIONS_MAX} action names of at most 64 characters, comma-separated`,
    })
    .optional()
    .meta({ description, example });

const auditQuery = z.object({
  key: storable(z.string().max(RECORDED_TEXT_MAX), 'key').optional(),
  actor: storable(z.string().max(300), 'actor').optional(),
  action: actionList(
    'action',
    'Only these actions (one, or several comma-separated)',
    'secret.read,secret.update',
  ),
  excludeAction: actionList(
    'excludeAction',
    'Leave out these actions (comma-separated), e.g. the listing that browsing records',
    'secret.list,secret.versions',
  ),
  environment: z
    .string()
    .regex(ENVIRONMENT_NAME_RE, { error: `environment must be ${ENVIRONMENT_NAME_RULE}` })
    .optional(),
  from: date('from'),
  to: date('to'),
  limit: limitSchema,
  cursor: cursorSchema,
});

const toEntry = (r: AuditRow) => ({
  id: r.id,
  at: r.at.toISOString(),
  actor: r.actor,
  action: r.action,
  key: r.key,
  version: r.version,
  outcome: r.outcome,
  // Stored without a name for default (storedEnvironment in ./repository.ts).
  environment:
    r.environment ??
    (r.action.startsWith('secret.') || r.action === 'environment.compare' ? DEFAULT_ENVIRONMENT : null),
  requestId: r.request_id,
  clientIp: r.client_ip,
  sealed: r.sealed,
  hash: r.sealed ? rowDigest(r).toString('hex') : null,
});

const cursors = new CursorCodec({ tag: 'a1', positionOf: (r: { id: string }) => r.id });

/** GET /api/audit and /api/audit/verify: admin JWT only (the guard's default for routes without config.access). */
export async function auditRoutes(
  app: FastifyInstance,
  opts: { db: Database; repo: AuditRepository; sealer: AuditSealer },
) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Audit'];
  const errs = errorResponses(400, 401, 403, 429, 503);

  r.get(
    '/api/audit',
    {
      schema: {
        tags,
        summary: 'Read the audit log',
        description:
          'Newest first, filtered by key, actor, action (or actions left out), environment and time [from, to); follow nextCursor for more. Secret rows written before environments existed belong to default.',
        querystring: auditQuery,
        response: {
          200: z.object({ entries: z.array(auditEntry), nextCursor: z.string().nullable() }),
          ...errs,
        },
      },
    },
    async (req) => {
      const q = req.query;
      const { page, nextCursor } = await cursors.page(
        q,
        (limit, beforeId) =>
          opts.repo.list(opts.db, {
            limit,
            beforeId,
            key: q.key,
            actor: q.actor,
            action: q.action,
            excludeAction: q.excludeAction,
            environment: q.environment,
            from: q.from,
            to: q.to,
          }),
        100,
      );
      return { entries: page.map(toEntry), nextCursor };
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
          200: chainVerification,
          ...errs,
        },
      },
    },
    async () => opts.sealer.verify(),
  );
}
