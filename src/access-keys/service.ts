import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { AuditContext } from '../audit/entry.js';
import type { AuditRepository } from '../audit/repository.js';
import type { Actor, Scope } from '../auth/actor.js';
import type { Database } from '../db/database.js';
import { errors } from '../http/errors.js';
import { cursorCodec, MAX_PAGE, pageOf } from '../pagination.js';
import type { AccessKeyRow, AccessKeysRepository } from './repository.js';
import { hashToken, newToken, TOKEN_PATTERN, tokenPrefix } from './token.js';

export interface AccessKeyView {
  id: string;
  name: string;
  tokenPrefix: string;
  scopes: string[];
  keys: string[] | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  status: 'active' | 'revoked' | 'expired';
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toView(r: AccessKeyRow, now = new Date()): AccessKeyView {
  return {
    id: r.id,
    name: r.name,
    tokenPrefix: r.token_prefix,
    scopes: r.scopes,
    keys: r.key_patterns,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    expiresAt: iso(r.expires_at),
    revokedAt: iso(r.revoked_at),
    lastUsedAt: iso(r.last_used_at),
    status: r.revoked_at ? 'revoked' : r.expires_at && r.expires_at <= now ? 'expired' : 'active',
  };
}

const cursors = cursorCodec('k1');

/** Rules and transactions for access keys; each change and its audit row commit together. */
export function createAccessKeyService(deps: {
  db: Database;
  repo: AccessKeysRepository;
  audit: AuditRepository;
}) {
  const { db, repo, audit } = deps;
  return {
    async create(
      input: {
        name: string;
        scopes: Scope[];
        keys?: string[] | undefined;
        expiresAt?: Date | null | undefined;
      },
      ctx: AuditContext,
    ): Promise<AccessKeyView & { token: string }> {
      if (input.expiresAt && input.expiresAt <= new Date()) {
        throw errors.invalidInput(
          'expiresAt must be in the future',
          'Omit expiresAt for a key that never expires',
        );
      }
      const token = newToken();
      const row = await db.transaction(async (tx) => {
        const r = await repo.insert(tx, {
          id: randomUUID(),
          name: input.name,
          tokenPrefix: tokenPrefix(token),
          tokenHash: hashToken(token),
          scopes: [...new Set(input.scopes)],
          keyPatterns: input.keys === undefined ? null : [...new Set(input.keys)],
          createdBy: ctx.actor,
          expiresAt: input.expiresAt ?? null,
        });
        await audit.append(tx, {
          ...ctx,
          action: 'access_key.create',
          key: `access_key:${r.id}`,
          outcome: 'success',
        });
        return r;
      });
      return { ...toView(row), token };
    },

    async list(opts: { limit?: number | undefined; cursor?: string | undefined }, ctx: AuditContext) {
      const limit = Math.min(opts.limit ?? MAX_PAGE, MAX_PAGE);
      const beforeSeq = opts.cursor === undefined ? undefined : cursors.decode(opts.cursor);
      const rows = await db.transaction(async (tx) => {
        await audit.append(tx, { ...ctx, action: 'access_key.list', outcome: 'success' });
        return repo.list(tx, { limit, beforeSeq });
      });
      const { page, nextCursor } = pageOf(rows, limit, (r) => r.seq, cursors.encode);
      return { accessKeys: page.map((r) => toView(r)), nextCursor };
    },

    async revoke(id: string, ctx: AuditContext): Promise<AccessKeyView> {
      const row = await db.transaction(async (tx) => {
        const r = await repo.revoke(tx, id);
        if (r)
          await audit.append(tx, {
            ...ctx,
            action: 'access_key.revoke',
            key: `access_key:${id}`,
            outcome: 'success',
          });
        return r;
      });
      if (!row) {
        await audit.append(db, {
          ...ctx,
          action: 'access_key.revoke',
          key: `access_key:${id}`,
          outcome: 'not_found',
        });
        throw errors.notFound(`Access key not found: ${id}`, 'List access keys with GET /api/access-keys');
      }
      return toView(row);
    },

    /**
     * Resolves a presented ik_ token to an actor. Throws 401 for an unknown, revoked or
     * expired key (the message says which, so an operator can act; it never echoes the token).
     */
    async authenticate(token: string): Promise<Actor> {
      if (!TOKEN_PATTERN.test(token)) throw errors.badToken('the access key is malformed');
      const digest = hashToken(token);
      const row = await repo.authenticate(db, digest);
      // The index lookup already matched the digest; the constant-time compare keeps that
      // true even if the lookup were ever changed to something looser.
      if (!row || !timingSafeEqual(row.token_hash, digest)) throw errors.badToken('unknown access key');
      if (row.revoked_at)
        throw errors.badToken(`the access key was revoked at ${row.revoked_at.toISOString()}`);
      if (row.expired) throw errors.badToken(`the access key expired at ${iso(row.expires_at)}`);
      return {
        kind: 'access_key',
        id: row.id,
        name: row.name,
        scopes: row.scopes as Scope[],
        keys: row.key_patterns,
      };
    },
  };
}

export type AccessKeyService = ReturnType<typeof createAccessKeyService>;
