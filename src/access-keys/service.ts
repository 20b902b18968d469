import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import type { AuditTrail } from '../audit/trail.js';
import type { Database } from '../db/database.js';
import { grantedEnvironments, requireEnvironments } from '../environments/grants.js';
import { errors } from '../errors.js';
import { type Actor, environmentGrant, type Scope } from '../identity/actor.js';
import type { Caller } from '../identity/caller.js';
import { CursorCodec, type PageQuery } from '../pagination.js';
import type { AccessKeyRow, AccessKeysRepository } from './repository.js';
import type { accessKeyView } from './schemas.js';
import { hashToken, newToken, TOKEN_PATTERN, tokenPrefix } from './token.js';

/** An access key as the API shows it: the type of its schema (src/access-keys/schemas.ts). */
export type AccessKeyView = z.output<typeof accessKeyView>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toView(r: AccessKeyRow, now = new Date()): AccessKeyView {
  return {
    id: r.id,
    name: r.name,
    tokenPrefix: r.token_prefix,
    scopes: r.scopes,
    keys: r.key_patterns,
    environments: r.environments,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    expiresAt: iso(r.expires_at),
    revokedAt: iso(r.revoked_at),
    lastUsedAt: iso(r.last_used_at),
    status: r.revoked_at ? 'revoked' : r.expires_at && r.expires_at <= now ? 'expired' : 'active',
  };
}

const cursors = new CursorCodec({ tag: 'k1', positionOf: (r: { seq: string }) => r.seq });

export interface AccessKeyServiceDeps {
  db: Database;
  repo: AccessKeysRepository;
  trail: AuditTrail;
}

/** Rules and transactions for access keys; each change and its audit row commit together. */
export class AccessKeyService {
  constructor(private readonly deps: AccessKeyServiceDeps) {}

  async create(
    input: {
      name: string;
      scopes: Scope[];
      keys?: string[] | undefined;
      environments?: string[] | undefined;
      expiresAt?: Date | null | undefined;
    },
    caller: Caller,
  ): Promise<AccessKeyView & { token: string }> {
    const envs = grantedEnvironments(input.environments);
    if (input.expiresAt && input.expiresAt <= new Date()) {
      throw errors.invalidInput(
        'expiresAt must be in the future',
        'Omit expiresAt for a key that never expires',
      );
    }
    const token = newToken();
    const id = randomUUID();
    const row = await this.deps.trail.change(caller, 'access_key.create', `access_key:${id}`, async (tx) => {
      await requireEnvironments(tx, envs);
      const r = await this.deps.repo.insert(tx, {
        id,
        name: input.name,
        tokenPrefix: tokenPrefix(token),
        tokenHash: hashToken(token),
        scopes: [...new Set(input.scopes)],
        keyPatterns: input.keys === undefined ? null : [...new Set(input.keys)],
        environments: envs,
        createdBy: caller.actor,
        expiresAt: input.expiresAt ?? null,
      });
      return { result: r, version: null };
    });
    return { ...toView(row), token };
  }

  async list(query: PageQuery, caller: Caller) {
    const { page, nextCursor } = await cursors.page(query, (limit, beforeSeq) =>
      this.deps.trail.lookup(caller, 'access_key.list', null, () =>
        this.deps.repo.listPage(this.deps.db, { limit, beforeSeq }),
      ),
    );
    return { accessKeys: page.map((r) => toView(r)), nextCursor };
  }

  async revoke(id: string, caller: Caller): Promise<AccessKeyView> {
    const row = await this.deps.trail.change(caller, 'access_key.revoke', `access_key:${id}`, async (tx) => {
      const r = await this.deps.repo.revokeRow(tx, id);
      if (!r)
        throw errors.notFound(`Access key not found: ${id}`, 'List access keys with GET /api/access-keys');
      return { result: r, version: null };
    });
    return toView(row);
  }

  /**
   * Resolves a presented ik_ token to an actor. Throws 401 for an unknown, revoked or
   * expired key (the message says which, so an operator can act; it never echoes the token).
   */
  async authenticate(token: string): Promise<Actor> {
    if (!TOKEN_PATTERN.test(token)) throw errors.badToken('the access key is malformed');
    const digest = hashToken(token);
    const row = await this.deps.repo.findByTokenHash(this.deps.db, digest);
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
      patterns: row.key_patterns,
      environments: environmentGrant(row.environments),
    };
  }
}
