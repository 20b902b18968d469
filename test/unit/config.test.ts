import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, settingVariables } from '../../src/config.js';
import { createLogger, jsonDestination } from '../../src/logger.js';
import { resolveKeys } from '../../src/runtime.js';

const secret = randomBytes(48).toString('base64');

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      nodeEnv: 'development',
      host: '127.0.0.1',
      port: 7130,
      dataDir: './data',
      databaseUrl: undefined,
      maxValueBytes: 65536,
      loginRateLimit: 10,
      rootAdmin: undefined,
      logBufferBytes: 4096,
      pgliteSharedBuffers: '16MB',
    });
    expect(c.jwt.adminRole).toBe('project_admin');
  });

  it('is deeply frozen', () => {
    const c = loadConfig({ JWT_SECRET: secret });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.jwt)).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow();
  });

  it('reads every variable', () => {
    const c = loadConfig({
      NODE_ENV: 'production',
      HOST: '0.0.0.0',
      PORT: '8080',
      DATABASE_URL: 'postgres://db/x',
      JWT_SECRET: secret,
      JWT_ISSUER: 'iss',
      JWT_AUDIENCE: 'aud',
      ADMIN_ROLE: 'ops',
      ROOT_ADMIN_USERNAME: 'u',
      ROOT_ADMIN_PASSWORD: 'p',
      MAX_VALUE_BYTES: '1024',
      LOGIN_RATE_LIMIT: '3',
      TRUST_PROXY: '2',
      MAX_RENDER_BYTES: '2048',
      JWT_MAX_TTL: '2h',
      METRICS_PORT: '9100',
      LOG_BUFFER_BYTES: '0',
    });
    expect(c).toMatchObject({
      nodeEnv: 'production',
      host: '0.0.0.0',
      port: 8080,
      databaseUrl: 'postgres://db/x',
      rootAdmin: { username: 'u', password: 'p' },
      maxValueBytes: 1024,
      loginRateLimit: 3,
      trustProxy: 2,
      maxRenderBytes: 2048,
      metricsPort: 9100,
      logBufferBytes: 0,
    });
    expect(c.jwt.maxTtlSeconds).toBe(7200);
    expect(c.jwt).toMatchObject({ issuer: 'iss', audience: 'aud', adminRole: 'ops', algorithm: undefined });
  });

  it('TRUST_PROXY takes false, a hop count or a list of addresses/CIDRs; defaults are safe', () => {
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.5,::1' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '192.168.1.5',
      '::1',
    ]);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    const d = loadConfig({});
    expect(d.trustProxy).toBe(false);
    expect(d.maxRenderBytes).toBe(1024 * 1024);
    expect(d.jwt.maxTtlSeconds).toBe(24 * 3600);
    expect(d.metricsPort).toBeUndefined();
  });

  it('DATABASE_READ_URL: one URL, a comma list or a multi-host URL, one entry per host; needs DATABASE_URL', () => {
    const primary = { DATABASE_URL: 'postgres://app@db1/secrets' };
    expect(loadConfig(primary).databaseReadUrls).toEqual([]);
    expect(loadConfig(primary).databaseReadMaxLagMs).toBe(1000);
    expect(
      loadConfig({ ...primary, DATABASE_READ_URL: 'postgres://app@r1:5433/secrets?sslmode=require' })
        .databaseReadUrls,
    ).toEqual(['postgres://app@r1:5433/secrets?sslmode=require']);
    expect(
      loadConfig({
        ...primary,
        DATABASE_READ_URL: 'postgres://app:pw@r1:5433,r2/secrets?x=1, postgresql://other@r3/secrets',
      }).databaseReadUrls,
    ).toEqual([
      'postgres://app:pw@r1:5433/secrets?x=1',
      'postgres://app:pw@r2/secrets?x=1',
      'postgresql://other@r3/secrets',
    ]);
    expect(() => loadConfig({ ...primary, DATABASE_READ_URL: 'mysql://r1/x' })).toThrow(
      /DATABASE_READ_URL: must be postgres:\/\/ URLs/,
    );
    expect(() => loadConfig({ ...primary, DATABASE_READ_URL: 'postgres://r1,,r2/x' })).toThrow(/empty host/);
    // The embedded database has no replicas: refused at start-up (exit 78), not ignored.
    expect(() => loadConfig({ DATABASE_READ_URL: 'postgres://r1/x' })).toThrow(
      /DATABASE_READ_URL: read replicas need a PostgreSQL primary: set DATABASE_URL too/,
    );
    expect(() => loadConfig({ ...primary, DATABASE_READ_MAX_LAG_MS: '5' })).toThrow(
      /DATABASE_READ_MAX_LAG_MS/,
    );
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ PORT: '', JWT_SECRET: '', DATABASE_URL: '' })).toMatchObject({
      port: 7130,
      databaseUrl: undefined,
    });
  });

  it.each([
    [{ PORT: 'http' }, /PORT/],
    [{ TRUST_PROXY: 'true' }, /TRUST_PROXY: true would trust every X-Forwarded-For hop/],
    [{ TRUST_PROXY: '10.0.0.0/8,proxy.local' }, /TRUST_PROXY: .*not an address: proxy.local/],
    [{ TRUST_PROXY: '10.0.0.0/33' }, /TRUST_PROXY/],
    [{ JWT_MAX_TTL: 'forever' }, /JWT_MAX_TTL: invalid duration/],
    [{ MAX_RENDER_BYTES: '10' }, /MAX_RENDER_BYTES/],
    [{ PORT: '70000' }, /PORT/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
    [{ LOG_LEVEL: 'verbose' }, /LOG_LEVEL/],
    [{ LOG_BUFFER_BYTES: 'lots' }, /LOG_BUFFER_BYTES/],
    [{ LOG_BUFFER_BYTES: '-1' }, /LOG_BUFFER_BYTES/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET: must be at least 32 bytes/],
    [{ ROOT_ADMIN_USERNAME: 'admin' }, /must be set together/],
    [{ JWT_ALGORITHM: 'RS256' }, /JWT_PUBLIC_KEY: is required when JWT_ALGORITHM is RS256/],
    [{ JWT_ALGORITHM: 'none' }, /JWT_ALGORITHM/],
    [{ MAX_VALUE_BYTES: '0' }, /MAX_VALUE_BYTES/],
    [{ MAX_VALUE_BYTES: 'lots' }, /MAX_VALUE_BYTES/],
    [{ TRUST_PROXY: 'maybe' }, /TRUST_PROXY/],
    // Set but empty used to fall back to ./data in the working directory, quietly.
    [{ DATA_DIR: '' }, /DATA_DIR: is set but empty/],
    [{ PGLITE_SHARED_BUFFERS: 'lots' }, /PGLITE_SHARED_BUFFERS: must be a PostgreSQL size/],
  ])('refuses %j with a message naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  // zod runs the cross-field refinements (JWT_SECRET length, pairs) only once the
  // per-variable checks pass, so "every problem" means every per-variable problem.
  it('lists every per-variable problem at once', () => {
    try {
      loadConfig({ PORT: 'x', LOG_LEVEL: 'verbose' });
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).problems).toHaveLength(2);
    }
  });
});

describe('keys at start-up', () => {
  const log = createLogger('silent');

  it('production refuses to start without ENCRYPTION_KEY and JWT_SECRET, saying how to make them', async () => {
    const err = await resolveKeys(loadConfig({ NODE_ENV: 'production' }), log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      /ENCRYPTION_KEY is required in production .*openssl rand -base64 32/,
    );
    expect((err as Error).message).toMatch(/JWT_SECRET is required in production/);
  });

  it('a malformed ENCRYPTION_KEY is a ConfigError saying how to make one', async () => {
    const err = await resolveKeys(loadConfig({ ENCRYPTION_KEY: 'hunter2', JWT_SECRET: secret }), log).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/openssl rand -base64 32/);
  });

  it('outside production, missing keys are generated into DATA_DIR and reused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'secrets-keys-'));
    try {
      const config = loadConfig({ DATA_DIR: dir });
      const a = await resolveKeys(config, log);
      const b = await resolveKeys(config, log);
      expect(a.jwtSecret.length).toBeGreaterThanOrEqual(32);
      expect(b.jwtSecret).toBe(a.jwtSecret);
      expect(b.keyring.get('k1')!.equals(a.keyring.get('k1')!)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the JSON log destination (LOG_BUFFER_BYTES)', () => {
  it('gathers lines into one write, and still delivers a lone line within the flush period', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'logbuf-'));
    const file = join(dir, 'out.log');
    const dest = jsonDestination(4096, file)!;
    try {
      await new Promise<void>((resolve) => dest.once('ready', () => resolve()));
      const log = createLogger('info', dest);
      log.info('first');
      log.info('second');
      // Buffered: nothing written yet, well under 4 KiB (read synchronously, in the same
      // tick, so the periodic flush cannot run in between).
      expect(readFileSync(file, 'utf8')).toBe('');
      // The periodic flush (250 ms) delivers them without more traffic: waited for as the
      // destination's own 'write' event (sonic-boom emits it once the bytes are written),
      // not a fixed sleep that a busy machine can outlast.
      const written = await new Promise<number>((resolve) => dest.once('write', resolve));
      expect(written).toBeGreaterThan(0);
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['first', 'second']);
    } finally {
      dest.end();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('0 turns buffering off (pino writes each line at once)', () => {
    expect(jsonDestination(0)).toBeUndefined();
  });
});

describe('the README configuration table', () => {
  /** The variables named in the first column of the rows under "## Configuration". */
  function documented(): string[] {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.split(/^## Configuration$/m)[1]?.split(/^## /m)[0] ?? '';
    const rows = section.split('\n').filter((l) => l.startsWith('| `'));
    return rows.flatMap((row) =>
      [...(row.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] ?? ''),
    );
  }

  it('names every setting the service reads, and nothing else', () => {
    const names = settingVariables;
    const inReadme = documented();
    expect(inReadme.length).toBeGreaterThan(0);
    expect(names.filter((n) => !inReadme.includes(n))).toEqual([]);
    expect(inReadme.filter((n) => !names.includes(n))).toEqual([]);
    expect(new Set(inReadme).size).toBe(inReadme.length);
  });
});
