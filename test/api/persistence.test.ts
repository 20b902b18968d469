import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { backend, createTestApp, dropSchema, newSchema } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue, trackValue } from '../helpers/secrets.js';

/**
 * Stop the server and start it again on the same data (DATA_DIR for the embedded backend,
 * the same schema on PostgreSQL): every value, its metadata and its history survive.
 */
let dataDir: string | undefined;
let schema: string | undefined;
afterAll(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  if (schema) await dropSchema(schema);
});

// A persistent PGlite's first start runs initdb on disk: tens of seconds on a loaded machine.
it('values and metadata survive a restart on the same data', { timeout: 180_000 }, async () => {
  if (backend === 'pglite') dataDir = await mkdtemp(join(tmpdir(), 'secrets-persist-'));
  else schema = await newSchema();
  const where = { ...(dataDir ? { dataDir } : {}), ...(schema ? { schema } : {}) };

  const values = {
    PLAIN: secretValue(),
    UNICODE: trackValue('Grüße 🔐 — ключ\r\n\ttrailing  '),
    UPDATED: secretValue('v2'),
  };
  const first = await createTestApp(where);
  let before: { secrets: Record<string, unknown>[] };
  try {
    const c1 = api(first, 'writer');
    await c1.create({ key: 'PLAIN', value: values.PLAIN, description: 'kept', isReserved: true });
    await c1.create({ key: 'UNICODE', value: values.UNICODE, expiresAt: '2099-01-01T00:00:00Z' });
    await c1.create({ key: 'UPDATED', value: secretValue('v1') });
    await c1.update('UPDATED', { value: values.UPDATED });
    await c1.create({ key: 'DELETED', value: secretValue() });
    await c1.remove('DELETED');
    await c1.reveal('PLAIN');
    before = (await c1.list()).json();
  } finally {
    // Closed whatever happened, before afterAll drops its schema.
    await first.close();
  }

  if (dataDir) {
    // The embedded database and the generated-or-given keys live under DATA_DIR.
    expect((await stat(join(dataDir, 'pglite'))).isDirectory()).toBe(true);
  }

  const second = await createTestApp({ ...where, env: { ...first.env, PGLITE_SHARED_BUFFERS: '24MB' } });
  try {
    if (dataDir) {
      // PGlite's buffer pool is PGLITE_SHARED_BUFFERS (default 16MB), not PostgreSQL's 128MB.
      const [sb] = await second.db.query<{ shared_buffers: string }>('SHOW shared_buffers');
      expect(sb?.shared_buffers).toBe('24MB');
    }
    const c2 = api(second, 'reader');
    for (const [key, value] of Object.entries(values)) {
      expect((await c2.reveal(key)).json(), key).toEqual({ key, value });
    }
    expect((await c2.reveal('DELETED')).json().message).toBe('Secret not found: DELETED is inactive');
    const after = (await c2.list()).json();
    // Same metadata, except the reads just made above moved lastUsed*.
    const strip = (s: Record<string, unknown>) => ({ ...s, lastUsedAt: null, lastUsedBy: null });
    expect(after.secrets.map(strip)).toEqual(before.secrets.map(strip));
    expect(after.secrets.find((s: { key: string }) => s.key === 'UPDATED').version).toBe(2);
    // And it keeps working: new writes after the restart.
    expect((await c2.create({ key: 'AFTER_RESTART', value: secretValue() })).statusCode).toBe(201);
  } finally {
    await second.close();
  }
});

// Embedded-only behaviour: defined only in the PGlite project (not skipped, not a silent pass).
const embeddedIt: typeof it = backend === 'pglite' ? it : ((() => {}) as unknown as typeof it);
// A persistent PGlite's first start runs initdb on disk: tens of seconds on a loaded machine.
embeddedIt(
  'the embedded server generates its keys into DATA_DIR on first start and reuses them',
  { timeout: 180_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'secrets-genkeys-'));
    try {
      // No ENCRYPTION_KEY/JWT_SECRET: empty strings count as unset.
      const env = { ENCRYPTION_KEY: '', JWT_SECRET: '' };
      const value = secretValue();
      const first = await createTestApp({ dataDir: dir, env });
      await api(first).create({ key: 'GENERATED', value });
      await first.close();
      for (const f of ['encryption.key', 'jwt.secret']) {
        const s = await stat(join(dir, 'keys', f));
        expect(s.mode & 0o777, f).toBe(0o600);
      }
      expect((await stat(join(dir, 'keys'))).mode & 0o777).toBe(0o700);
      const second = await createTestApp({ dataDir: dir, env });
      expect(second.jwtSecret).toBe(first.jwtSecret);
      expect((await api(second).reveal('GENERATED')).json().value).toBe(value);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
