import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { hashToken, newToken, tokenPrefix } from '../../src/access-keys/token.js';
import { canonicalRow, type SealedRowContent } from '../../src/audit/chain.js';
import { type AuditRepository, createAuditRepository } from '../../src/audit/repository.js';
import { AuditSealer } from '../../src/audit/sealer.js';
import { sealValue } from '../../src/crypto/envelope.js';
import { createKeyring, DEFAULT_KID } from '../../src/crypto/keyring.js';
import type { Database } from '../../src/db/database.js';
import { loadMigrations, migrate } from '../../src/db/migrate.js';
import { openPostgres } from '../../src/db/postgres.js';
import { cryptoColumns, sealedParams } from '../../src/db/sealed-columns.js';
import { bearer } from '../helpers/access-keys.js';
import {
  backend,
  createTestApp,
  dropSchema,
  newSchema,
  type TestApp,
  testDatabaseUrl,
} from '../helpers/app.js';
import { openEmptyPgliteDir } from '../helpers/pglite-snapshot.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * A database populated before environments existed (migrations 001-006, its audit rows
 * sealed the way the code of that time sealed them) is migrated by starting the service:
 * its secrets are in `default` under their own ids with every version, its access key
 * reaches what it reached, and the audit chain still verifies.
 */

let dataDir: string | undefined;
let schema: string | undefined;
let t: TestApp | undefined;

afterAll(async () => {
  await t?.close();
  if (schema) await dropSchema(schema);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** The columns a row was sealed over before migration 007 (no environment column yet). */
const PRE_007_ROW_CONTENT = `id::text AS id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at_text,
  actor, action, key, version, outcome, request_id, client_ip, client_request_id, xid::text AS xid`;

/** The sealer as it ran before 007: the same code, reading the rows without the new column. */
const pre007Repo = (): AuditRepository => ({
  ...createAuditRepository(),
  rowsIn: (q, r) =>
    q.query<SealedRowContent>(
      `SELECT ${PRE_007_ROW_CONTENT} FROM audit_log
       WHERE xid >= $1::xid8 AND xid < $2::xid8
         AND ($3::timestamptz IS NULL OR at >= $3::timestamptz)
         AND ($4::timestamptz IS NULL OR at < $4::timestamptz)
       ORDER BY audit_log.id`,
      [r.xidFrom, r.xidTo, r.atLo, r.atHi],
    ),
});

describe('migration 007 on a populated database', () => {
  it('keeps the canonical form of rows without an environment exactly as it was', () => {
    const row: SealedRowContent = {
      id: '7',
      at_text: '2026-01-02T03:04:05.123456Z',
      actor: 'admin:a',
      action: 'secret.read',
      key: 'K',
      version: 2,
      outcome: 'success',
      request_id: 'r',
      client_ip: '127.0.0.1',
      client_request_id: false,
      xid: '900',
    };
    const before =
      '["7","2026-01-02T03:04:05.123456Z","admin:a","secret.read","K",2,"success","r","127.0.0.1",false,"900"]';
    expect(canonicalRow(row)).toBe(before);
    expect(canonicalRow({ ...row, environment: null })).toBe(before);
    expect(canonicalRow({ ...row, environment: 'staging' })).toBe(`${before.slice(0, -1)},"staging"]`);
  });

  it('moves every secret into default with its id, versions and sealed audit history', async () => {
    const encryptionKey = randomBytes(32);
    const keyring = createKeyring(new Map([[DEFAULT_KID, encryptionKey]]), DEFAULT_KID);
    let db: Database;
    if (backend === 'postgres') {
      schema = await newSchema();
      db = openPostgres({ connectionString: testDatabaseUrl, max: 2, schema });
    } else {
      dataDir = await mkdtemp(join(tmpdir(), 'secrets-env-migration-'));
      db = await openEmptyPgliteDir(dataDir, inject('pgliteSnapshot'));
    }
    const all = await loadMigrations();
    await migrate(
      db,
      all.filter((m) => m.version <= 6),
    );

    // Two secrets as the service of that time stored them: one with two versions, one deleted.
    const id = randomUUID();
    const [v1, v2] = [secretValue('old1'), secretValue('old2')];
    await db.query(
      `INSERT INTO secrets (id, key, description, current_version, revision) VALUES ($1, 'LEGACY_KEY', 'from before', 2, 2)`,
      [id],
    );
    for (const [version, value] of [
      [1, v1],
      [2, v2],
    ] as const) {
      await db.query(
        `INSERT INTO secret_versions (secret_id, version, created_by, ${cryptoColumns()}) VALUES ($1, $2, 'old', $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          id,
          version,
          ...sealedParams(sealValue(keyring, { secretId: id, key: 'LEGACY_KEY', version }, value)),
        ],
      );
    }
    const goneId = randomUUID();
    await db.query(
      `INSERT INTO secrets (id, key, current_version, is_active) VALUES ($1, 'LEGACY_GONE', 1, false)`,
      [goneId],
    );
    await db.query(
      `INSERT INTO secret_versions (secret_id, version, ${cryptoColumns()}) VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        goneId,
        ...sealedParams(
          sealValue(keyring, { secretId: goneId, key: 'LEGACY_GONE', version: 1 }, secretValue('gone')),
        ),
      ],
    );
    // An access key of that time, and its audit history, sealed.
    const token = newToken();
    await db.query(
      `INSERT INTO access_keys (id, name, token_prefix, token_hash, scopes, key_patterns, created_by)
       VALUES ($1, 'legacy-ci', $2, $3, $4::text[], NULL, 'admin:old')`,
      [randomUUID(), tokenPrefix(token), hashToken(token), ['secrets:read', 'secrets:list']],
    );
    for (const action of ['secret.create', 'secret.update', 'secret.read', 'secret.delete'])
      await db.query(
        `INSERT INTO audit_log (actor, action, key, version, outcome, request_id, client_ip)
         VALUES ('admin:old', $1, 'LEGACY_KEY', 1, 'success', 'req-old', '10.0.0.1')`,
        [action],
      );
    // A range is sealed once every transaction of this schema below its end has finished
    // (src/db/xid-horizon.ts): none is open here, so one round seals them all, whatever else
    // runs on a shared PostgreSQL.
    expect(await new AuditSealer({ db, repo: pre007Repo() }).sealPending()).toBe(4);
    const sealsBefore = await db.query<{ hash: Buffer }>('SELECT hash FROM audit_seals ORDER BY seq');
    await db.close();

    // Starting the service applies 007.
    t = await createTestApp({
      ...(schema ? { schema } : {}),
      ...(dataDir ? { dataDir } : {}),
      env: { ENCRYPTION_KEY: encryptionKey.toString('base64'), AUDIT_SEAL_INTERVAL_MS: '0' },
    });
    const app = t;
    const h = app.auth();
    const get = (url: string, headers = h) => app.app.inject({ method: 'GET', url, headers });

    const rows = await app.db.query<{ id: string; key: string; environment: string }>(
      'SELECT id, key, environment FROM secrets ORDER BY key',
    );
    expect(rows).toEqual([
      { id: goneId, key: 'LEGACY_GONE', environment: 'default' },
      { id, key: 'LEGACY_KEY', environment: 'default' },
    ]);
    expect((await get('/api/secrets/LEGACY_KEY')).json()).toEqual({ key: 'LEGACY_KEY', value: v2 });
    expect((await get('/api/secrets/LEGACY_KEY?version=1')).json()).toEqual({ key: 'LEGACY_KEY', value: v1 });
    const versions = await get('/api/secrets/LEGACY_KEY/versions');
    expect(versions.json().versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    const listed = (await get('/api/secrets')).json().secrets as { id: string; key: string }[];
    expect(listed.map((s) => [s.key, s.id])).toEqual([
      ['LEGACY_GONE', goneId],
      ['LEGACY_KEY', id],
    ]);
    // The deleted one revives under its own id (uniqueness is now per environment).
    const revived = await app.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: h,
      payload: { key: 'LEGACY_GONE', value: secretValue('revived') },
    });
    expect(revived.statusCode).toBe(201);
    expect(revived.json().id).toBe(goneId);

    // The old access key covers default, and only default.
    const key = bearer(token);
    expect((await get('/api/secrets/LEGACY_KEY', key)).json().value).toBe(v2);
    const keys = (await get('/api/access-keys')).json().accessKeys as { environments: string[] }[];
    expect(keys.map((k) => k.environments)).toEqual([['default']]);
    expect(
      (
        await app.app.inject({
          method: 'POST',
          url: '/api/environments',
          headers: h,
          payload: { name: 'staging' },
        })
      ).statusCode,
    ).toBe(201);
    expect((await get('/api/environments/staging', key)).statusCode).toBe(403);

    // The seals made before the migration are untouched and the whole chain verifies,
    // old rows (no environment) and new ones (default) alike.
    const verify = await get('/api/audit/verify');
    expect(verify.json()).toMatchObject({ intact: true, firstBrokenId: null });
    expect(verify.json().checked).toBeGreaterThan(4);
    const sealsAfter = await app.db.query<{ hash: Buffer }>('SELECT hash FROM audit_seals ORDER BY seq');
    expect(sealsAfter.slice(0, sealsBefore.length)).toEqual(sealsBefore);
    // default's rows, old and new, are stored alike (without a name); the audit API names it.
    const envs = await app.db.query<{ environment: string | null; n: number }>(
      `SELECT environment, count(*)::int AS n FROM audit_log WHERE key = 'LEGACY_KEY' GROUP BY environment`,
    );
    expect(envs).toHaveLength(1);
    expect(envs[0]?.environment).toBe(null);
    expect(envs[0]?.n).toBeGreaterThan(4);
    const viaApi = (await get('/api/audit?environment=default&key=LEGACY_KEY')).json().entries as {
      environment: string;
    }[];
    expect(viaApi.length).toBe(envs[0]?.n);
    expect(new Set(viaApi.map((e) => e.environment))).toEqual(new Set(['default']));

    // Tampering with an old row's content is still detected.
    await app.db.query(
      `UPDATE audit_log SET actor = 'admin:forged' WHERE request_id = 'req-old' AND action = 'secret.read'`,
    );
    expect((await get('/api/audit/verify')).json().intact).toBe(false);
  });
});
