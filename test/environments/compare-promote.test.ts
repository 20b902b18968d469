import { describe, expect, it } from 'vitest';
import { bearer, createAccessKey } from '../helpers/access-keys.js';
import { useTestApp } from '../helpers/app.js';
import { issuedValues, secretValue } from '../helpers/secrets.js';

/**
 * Compare two environments without revealing a value, and promote selected keys from one to
 * another as one all-or-nothing batch, compare-and-set on the target.
 */
const t = useTestApp({ resetEachTest: true });

const base = (env: string) => (env === 'default' ? '/api/secrets' : `/api/environments/${env}/secrets`);
const send = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object, headers = t.auth()) =>
  t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
const put = async (env: string, key: string, value: string, extra: object = {}) =>
  expect((await send('POST', base(env), { key, value, ...extra })).statusCode).toBe(201);
const valueIn = async (env: string, key: string) => (await send('GET', `${base(env)}/${key}`)).json().value;

async function twoEnvironments() {
  for (const name of ['staging', 'production'])
    expect((await send('POST', '/api/environments', { name })).statusCode).toBe(201);
  const same = secretValue('same');
  await put('staging', 'SAME', same);
  await put('production', 'SAME', same);
  await put('staging', 'DIFFERS', secretValue('s'));
  await put('production', 'DIFFERS', secretValue('p'));
  await put('staging', 'NEW_ONE', secretValue('new'));
  await put('production', 'PROD_ONLY', secretValue('prod'));
}

const compare = async (a: string, b: string, headers = t.auth()) => {
  const res = await send('GET', `/api/environments/${a}/compare/${b}`, undefined, headers);
  return { res, byKey: Object.fromEntries((res.json().keys ?? []).map((k: { key: string }) => [k.key, k])) };
};

describe('compare', () => {
  it('lists keys only in a, only in b, equal and different, never a value, each compared value an audited read', async () => {
    await twoEnvironments();
    const { res, byKey } = await compare('staging', 'production');
    expect(res.statusCode).toBe(200);
    expect(
      Object.fromEntries(Object.entries(byKey).map(([k, v]) => [k, (v as { status: string }).status])),
    ).toEqual({
      DIFFERS: 'different',
      NEW_ONE: 'only_in_a',
      PROD_ONLY: 'only_in_b',
      SAME: 'equal',
    });
    expect(res.json().keys.map((k: { key: string }) => k.key)).toEqual([
      'DIFFERS',
      'NEW_ONE',
      'PROD_ONLY',
      'SAME',
    ]);
    for (const v of issuedValues) expect(res.body).not.toContain(v);
    // The ETags are the secrets' own: what promote's compare-and-set names.
    const etag = (await send('GET', `${base('production')}/DIFFERS`)).headers.etag;
    expect(byKey.DIFFERS.etagB).toBe(etag);
    const rows = await t.db.query<{ key: string; environment: string; outcome: string }>(
      `SELECT key, environment, outcome FROM audit_log WHERE action = 'environment.compare' ORDER BY key, environment`,
    );
    expect(rows).toEqual([
      { key: 'DIFFERS', environment: 'production', outcome: 'success' },
      { key: 'DIFFERS', environment: 'staging', outcome: 'success' },
      { key: 'SAME', environment: 'production', outcome: 'success' },
      { key: 'SAME', environment: 'staging', outcome: 'success' },
    ]);
    // Against default too, and the other way round.
    await put('default', 'SAME', secretValue());
    const back = await compare('default', 'staging');
    expect(back.byKey.SAME.status).toBe('different');
    expect(back.byKey.NEW_ONE.status).toBe('only_in_b');
  });

  it('compares write-only values only for a credential holding secrets:inject', async () => {
    await twoEnvironments();
    const locked = secretValue('locked');
    await put('staging', 'LOCKED', locked, { isWriteOnly: true });
    await put('production', 'LOCKED', locked, { isWriteOnly: true });
    expect((await compare('staging', 'production')).byKey.LOCKED).toMatchObject({
      status: 'not_compared',
      reason: 'write_only',
    });
    const k = await createAccessKey(t, { scopes: ['secrets:read', 'secrets:inject'], environments: ['*'] });
    expect((await compare('staging', 'production', bearer(k.token))).byKey.LOCKED.status).toBe('equal');
  });

  it('refuses an environment the credential does not cover (403) and an unknown one (404)', async () => {
    await twoEnvironments();
    const k = await createAccessKey(t, { scopes: ['secrets:read'], environments: ['staging'] });
    for (const [a, b] of [
      ['staging', 'production'],
      ['production', 'staging'],
      ['staging', 'nowhere'],
    ]) {
      const { res } = await compare(a!, b!, bearer(k.token));
      expect(res.statusCode, `${a} ${b}`).toBe(403);
      expect(res.body).not.toContain('PROD_ONLY');
    }
    expect((await compare('staging', 'nowhere')).res.statusCode).toBe(404);
    expect((await compare('nowhere', 'staging')).res.statusCode).toBe(404);
  });
});

describe('promote', () => {
  const promote = (from: string, to: string, secrets: object[], headers = t.auth()) =>
    send('POST', `/api/environments/${from}/promote/${to}`, { secrets }, headers);

  it('copies the selected values as one batch, compare-and-set on the target', async () => {
    await twoEnvironments();
    const { byKey } = await compare('staging', 'production');
    const res = await promote('staging', 'production', [
      { key: 'DIFFERS', targetEtag: byKey.DIFFERS.etagB },
      { key: 'NEW_ONE', targetEtag: null },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      from: 'staging',
      to: 'production',
      results: [
        { key: 'DIFFERS', status: 'updated' },
        { key: 'NEW_ONE', status: 'created' },
      ],
    });
    for (const v of issuedValues) expect(res.body).not.toContain(v);
    for (const key of ['DIFFERS', 'NEW_ONE'])
      expect(await valueIn('production', key)).toBe(await valueIn('staging', key));
    const after = await compare('staging', 'production');
    expect(after.byKey.DIFFERS.status).toBe('equal');
    expect(after.byKey.NEW_ONE.status).toBe('equal');
    const rows = await t.db.query<{ action: string; key: string; environment: string }>(
      `SELECT action, key, environment FROM audit_log WHERE action IN ('environment.promote', 'secret.create', 'secret.update')
         AND environment IS NOT NULL AND outcome = 'success' ORDER BY id DESC LIMIT 4`,
    );
    expect(rows.map((r) => `${r.action} ${r.key} ${r.environment}`).sort()).toEqual([
      'environment.promote DIFFERS staging',
      'environment.promote NEW_ONE staging',
      'secret.create NEW_ONE production',
      'secret.update DIFFERS production',
    ]);
  });

  it('is all or nothing: a stale target ETag, or a key that appeared, writes nothing at all', async () => {
    await twoEnvironments();
    const before = {
      DIFFERS: await valueIn('production', 'DIFFERS'),
      SAME: await valueIn('production', 'SAME'),
    };
    const { byKey } = await compare('staging', 'production');
    await send('PUT', `${base('staging')}/SAME`, { value: secretValue('changed') });
    // Someone changes the target after the comparison.
    await send('PUT', `${base('production')}/DIFFERS`, { value: secretValue('meanwhile') });
    const meanwhile = await valueIn('production', 'DIFFERS');
    const stale = await promote('staging', 'production', [
      { key: 'SAME', targetEtag: byKey.SAME.etagB },
      { key: 'DIFFERS', targetEtag: byKey.DIFFERS.etagB },
    ]);
    expect(stale.statusCode).toBe(412);
    expect(stale.json().message).toContain('DIFFERS');
    expect(await valueIn('production', 'SAME')).toBe(before.SAME);
    expect(await valueIn('production', 'DIFFERS')).toBe(meanwhile);
    // "Absent" on the target, but it exists: refused too.
    const exists = await promote('staging', 'production', [
      { key: 'NEW_ONE', targetEtag: null },
      { key: 'SAME', targetEtag: null },
    ]);
    expect(exists.statusCode).toBe(412);
    expect((await send('GET', `${base('production')}/NEW_ONE`)).statusCode).toBe(404);
    const aborted = await t.db.query<{ key: string; outcome: string }>(
      `SELECT key, outcome FROM audit_log WHERE action = 'environment.promote' ORDER BY id`,
    );
    expect(aborted.every((r) => r.outcome === 'aborted')).toBe(true);
    expect(aborted.length).toBe(4);
  });

  it('stays all or nothing under concurrent writes to the target', async () => {
    await twoEnvironments();
    await put('staging', 'HOT', secretValue('hot-s'));
    await put('production', 'HOT', secretValue('hot-p'));
    for (let round = 0; round < 8; round++) {
      const { byKey } = await compare('staging', 'production');
      const oldDiffers = await valueIn('production', 'DIFFERS');
      const written = secretValue(`w${round}`);
      const [promoted, wrote] = await Promise.all([
        promote('staging', 'production', [
          { key: 'DIFFERS', targetEtag: byKey.DIFFERS.etagB },
          { key: 'HOT', targetEtag: byKey.HOT.etagB },
        ]),
        send('PUT', `${base('production')}/HOT`, { value: written }),
      ]);
      expect(wrote.statusCode).toBe(200);
      const differs = await valueIn('production', 'DIFFERS');
      if (promoted.statusCode === 200) {
        // The promote committed first: both entries were written, then the writer's value.
        expect(differs).toBe(await valueIn('staging', 'DIFFERS'));
        expect(await valueIn('production', 'HOT')).toBe(written);
      } else {
        // The writer won: nothing of the promote was written.
        expect(promoted.statusCode).toBe(412);
        expect(differs).toBe(oldDiffers);
        expect(await valueIn('production', 'HOT')).toBe(written);
      }
      // Make them differ again for the next round.
      await send('PUT', `${base('staging')}/DIFFERS`, { value: secretValue(`s${round}`) });
    }
  });

  it('needs both environments covered, secrets:read and secrets:write, and the keys visible', async () => {
    await twoEnvironments();
    const stagingOnly = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write'],
      environments: ['staging'],
    });
    const writeOnly = await createAccessKey(t, { scopes: ['secrets:write'], environments: ['*'] });
    const narrow = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write'],
      keys: ['SAME'],
      environments: ['*'],
    });
    const entries = [{ key: 'NEW_ONE', targetEtag: null }];
    for (const [k, why] of [
      [stagingOnly, 'does not cover the environment production'],
      [writeOnly, 'lacks the scope secrets:read'],
      [narrow, 'may not read: NEW_ONE'],
    ] as const) {
      const res = await promote('staging', 'production', entries, bearer(k.token));
      expect(res.statusCode, why).toBe(403);
      expect(res.json().message).toContain(why);
    }
    expect((await send('GET', `${base('production')}/NEW_ONE`)).statusCode).toBe(404);
    const full = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write'],
      environments: ['staging', 'production'],
    });
    expect((await promote('staging', 'production', entries, bearer(full.token))).statusCode).toBe(200);
  });

  it('refuses bad bodies, unknown keys and the same environment twice', async () => {
    await twoEnvironments();
    for (const body of [
      [],
      [{ key: 'SAME' }],
      [{ key: 'bad', targetEtag: null }],
      [{ key: 'SAME', targetEtag: null, x: 1 }],
    ]) {
      expect(
        (await promote('staging', 'production', body as object[])).statusCode,
        JSON.stringify(body),
      ).toBe(400);
    }
    const missing = await promote('staging', 'production', [{ key: 'PROD_ONLY', targetEtag: null }]);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toBe('Secret not found in staging: PROD_ONLY');
    expect((await promote('staging', 'staging', [{ key: 'SAME', targetEtag: null }])).statusCode).toBe(400);
  });
});
