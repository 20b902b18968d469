import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { apiKey, createAccessKey } from '../helpers/access-keys.js';
import { useFixture } from '../helpers/app.js';
import { type TestRedis, testRedis } from '../helpers/redis-server.js';
import { createTestServer } from '../helpers/server.js';

/**
 * Issue 21, bounded work per caller: an identity that keeps being refused (bad input,
 * denials, bodies too large, other limits) is answered 429 with Retry-After once it has been
 * refused REFUSAL_RATE_LIMIT times in the minute, before its body is read: a flood of
 * refused requests costs one counter peek each. The answer that crossed the limit leaves one
 * audit row (rate_limited); the rest of the window is counted in one summary row for the
 * identity (`refusals.suppressed`, the count in `version`), written when the window's timer
 * fires or the app closes (here: the same flush, called). Other identities, from the same
 * address, are served as before. Real HTTP (the body that is not read), both backends, with
 * the counters in process and in Redis (REDIS_URL; each test uses identities of its own, so
 * each starts with an empty window).
 */
const LIMIT = 5;

for (const store of ['in process', 'in Redis'] as const)
  describe(`counters ${store}`, () => {
    let redis: TestRedis | undefined;
    // Registered before the server's fixture, so it runs after the server has closed.
    afterAll(async () => redis?.stop());
    const t = useFixture(
      async () => {
        const env: Record<string, string> = { REFUSAL_RATE_LIMIT: String(LIMIT) };
        if (store === 'in Redis') {
          redis = await testRedis();
          env.REDIS_URL = redis.url;
          env.RATE_LIMIT_NAMESPACE = `test-refusals-${randomBytes(6).toString('hex')}:`;
        }
        return createTestServer({ env });
      },
      { resetEachTest: true },
    );

    async function auditRows(requestIds: string[]) {
      const rows = await t.db.query<{ request_id: string; outcome: string }>(
        'SELECT request_id, outcome FROM audit_log WHERE request_id = ANY($1::text[])',
        [requestIds],
      );
      return new Map(rows.map((r) => [r.request_id, r.outcome]));
    }

    it('answers 429 past REFUSAL_RATE_LIMIT refusals, auditing the one that crossed it, and serves others', async () => {
      const lister = await createAccessKey(t, { scopes: ['secrets:list'] });
      const sent: { id: string; status: number; retryAfter: string | null }[] = [];
      for (let i = 0; i < LIMIT + 4; i++) {
        const id = `rl-${i}`;
        // A secrets:list key may not read a value: 403, a refusal.
        const res = await fetch(`${t.url}/api/secrets/RL_KEY`, {
          headers: { ...apiKey(lister.token), 'x-request-id': id },
        });
        await res.arrayBuffer();
        sent.push({ id, status: res.status, retryAfter: res.headers.get('retry-after') });
      }
      expect(sent.map((s) => s.status)).toEqual([...Array(LIMIT).fill(403), ...Array(4).fill(429)]);
      for (const s of sent.slice(LIMIT)) expect(Number(s.retryAfter)).toBeGreaterThan(0);
      const rows = await auditRows(sent.map((s) => s.id));
      // The refusals each left their row; past the limit, only the answer that crossed it.
      expect(sent.map((s) => rows.get(s.id) ?? null)).toEqual([
        ...Array(LIMIT).fill('denied'),
        'rate_limited',
        null,
        null,
        null,
      ]);
      // The three after it are counted in one summary row, once the window's rows are written.
      const summary = () =>
        t.db.query<{ actor: string; key: string; version: number; outcome: string; client_ip: string }>(
          `SELECT actor, key, version, outcome, client_ip FROM audit_log WHERE action = 'refusals.suppressed'`,
        );
      expect(await summary()).toEqual([]);
      await t.app.suppressedRefusals.flush();
      const [row, ...more] = await summary();
      expect(more).toEqual([]);
      expect(row).toMatchObject({
        actor: `access_key:${lister.id}`,
        version: 3,
        outcome: 'rate_limited',
        client_ip: '127.0.0.1',
      });
      expect(row?.key).toMatch(/^REFUSAL_RATE_LIMIT \S+Z\/\S+Z$/);
      // Written once: a second flush has nothing left to write.
      await t.app.suppressedRefusals.flush();
      expect(await summary()).toHaveLength(1);

      // Another identity from the same address is served.
      const admin = await fetch(`${t.url}/api/secrets`, { headers: t.auth() });
      expect(admin.status).toBe(200);
      await admin.arrayBuffer();
    });

    it('does not count ordinary answers (404 for a missing secret) as refusals', async () => {
      for (let i = 0; i < LIMIT + 3; i++) {
        const res = await fetch(`${t.url}/api/secrets/NOT_THERE_${i}`, { headers: t.auth('reader') });
        expect(res.status).toBe(404);
        await res.arrayBuffer();
      }
      const res = await fetch(`${t.url}/api/secrets`, { headers: t.auth('reader') });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    });

    it('past the limit, answers a large body without reading it, and closes the connection', async () => {
      // An admin sends bodies over the size limit: 413s, each a refusal.
      for (let i = 0; i < LIMIT; i++) {
        const res = await fetch(`${t.url}/api/secrets`, {
          method: 'POST',
          headers: { ...t.auth('big'), 'content-type': 'application/json' },
          body: JSON.stringify({ key: 'BIG', value: 'x'.repeat(2 * 1024 * 1024) }),
        });
        expect(res.status).toBe(413);
        await res.arrayBuffer();
      }
      // Now headers announcing 8 MB and no body at all: the answer comes without waiting for it.
      const { hostname, port } = new URL(t.url);
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect({ host: hostname, port: Number(port) });
        let got = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => {
          got += d;
        });
        s.once('error', reject);
        s.once('close', () => resolve(got));
        s.write(
          [
            'POST /api/secrets HTTP/1.1',
            `host: ${hostname}:${port}`,
            'content-type: application/json',
            `content-length: ${8 * 1024 * 1024}`,
            `authorization: ${t.auth('big').authorization}`,
            '',
            '',
          ].join('\r\n'),
        );
      });
      expect(answer).toMatch(/^HTTP\/1\.1 429/);
      expect(answer.toLowerCase()).toContain('connection: close');
      expect(answer.toLowerCase()).toMatch(/retry-after: \d+/);
    });
  });
