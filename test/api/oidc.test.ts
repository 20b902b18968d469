import { exportJWK, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bearer, createAccessKey } from '../helpers/access-keys.js';
import { createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { githubClaims, kubernetesClaims, type LocalIssuer, startIssuer } from '../helpers/oidc-issuer.js';
import { freePort } from '../helpers/pg-cluster.js';
import { secretValue } from '../helpers/secrets.js';

/**
 * Workload identity (issue 25): trust policies, the RFC 8693 exchange at POST
 * /api/auth/token against a real OIDC issuer on loopback, the issued credential, and every
 * refusal with its audit row. OIDC_ALLOW_HTTP_ISSUERS lets the trusts name the loopback
 * issuer (http); the https rule itself is checked on an app without it.
 */
const t = useTestApp({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', OIDC_ALLOW_HTTP_ISSUERS: 'true' },
  resetEachTest: true,
});
const admin = api(t);

let gh: LocalIssuer;
let k8s: LocalIssuer;
beforeAll(async () => {
  gh = await startIssuer({ path: '/gh' });
  k8s = await startIssuer({ path: '/k8s', alg: 'ES256' });
});
afterAll(async () => {
  await gh.close();
  await k8s.close();
});
beforeEach(() => {
  gh.down(false);
});

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** Helpers below act on this file's app, or on `on` (a test's own app). */
async function trust(body: Record<string, unknown>, on: TestApp = t) {
  const res = await on.app.inject({
    method: 'POST',
    url: '/api/auth/trusts',
    headers: on.auth('alice'),
    payload: body,
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

const githubTrust = (over: Record<string, unknown> = {}, on: TestApp = t) =>
  trust(
    {
      name: 'gh-deploy',
      issuer: gh.issuer,
      audiences: ['secrets-service'],
      subject: 'repo:acme/shop:*',
      claims: { repository_id: '123456', ref: 'refs/heads/main' },
      scopes: ['secrets:read', 'secrets:list'],
      keys: ['STRIPE_*'],
      ...over,
    },
    on,
  );

function exchange(subjectToken: string, extra: Record<string, string> = {}, form = false, on: TestApp = t) {
  const body = {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: JWT_TYPE,
    ...extra,
  };
  return on.app.inject({
    method: 'POST',
    url: '/api/auth/token',
    ...(form
      ? {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams(body).toString(),
        }
      : { payload: body }),
  });
}

async function exchangeRows(on: TestApp = t) {
  return on.db.query<{ actor: string; key: string; outcome: string }>(
    `SELECT actor, key, outcome FROM audit_log WHERE action = 'auth.token_exchange' ORDER BY id`,
  );
}

describe('trust policies', () => {
  it('admin creates, reads, lists, replaces and deletes them, each audited', async () => {
    const created = await githubTrust();
    expect(created).toMatchObject({
      name: 'gh-deploy',
      ttlSeconds: 900,
      keys: ['STRIPE_*'],
      createdBy: 'admin:alice',
    });
    const list = await t.app.inject({ method: 'GET', url: '/api/auth/trusts', headers: t.auth() });
    expect(list.json().trusts.map((x: { name: string }) => x.name)).toEqual(['gh-deploy']);
    const put = await t.app.inject({
      method: 'PUT',
      url: '/api/auth/trusts/gh-deploy',
      headers: t.auth(),
      payload: {
        name: 'gh-deploy',
        issuer: gh.issuer,
        audiences: ['a'],
        subject: 'repo:acme/shop:*',
        scopes: ['secrets:read'],
        ttlSeconds: 300,
      },
    });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json()).toMatchObject({ audiences: ['a'], ttlSeconds: 300, keys: null });
    const dup = await t.app.inject({
      method: 'POST',
      url: '/api/auth/trusts',
      headers: t.auth(),
      payload: {
        name: 'gh-deploy',
        issuer: gh.issuer,
        audiences: ['b'],
        subject: 's',
        scopes: ['secrets:read'],
      },
    });
    expect(dup.statusCode).toBe(409);
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/api/auth/trusts/gh-deploy',
      headers: t.auth(),
    });
    expect(del.statusCode).toBe(200);
    const gone = await t.app.inject({ method: 'GET', url: '/api/auth/trusts/gh-deploy', headers: t.auth() });
    expect(gone.statusCode).toBe(404);
    const rows = await t.db.query<{ action: string; outcome: string }>(
      `SELECT action, outcome FROM audit_log WHERE action LIKE 'oidc_trust.%' ORDER BY id`,
    );
    expect(rows.map((r) => `${r.action}:${r.outcome}`)).toEqual([
      'oidc_trust.create:success',
      'oidc_trust.list:success',
      'oidc_trust.update:success',
      'oidc_trust.create:conflict',
      'oidc_trust.delete:success',
      'oidc_trust.list:not_found',
    ]);
  });

  it('is admin only: an access key gets 403 and the attempt is audited', async () => {
    const key = await createAccessKey(t, {
      scopes: ['secrets:read', 'secrets:write', 'secrets:list', 'secrets:delete'],
    });
    const res = await t.app.inject({ method: 'GET', url: '/api/auth/trusts', headers: bearer(key.token) });
    expect(res.statusCode).toBe(403);
    const rows = await t.db.query<{ outcome: string }>(
      `SELECT outcome FROM audit_log WHERE action = 'oidc_trust.list'`,
    );
    expect(rows).toEqual([{ outcome: 'denied' }]);
  });

  it('refuses bad policies with 400 and a clear message, storing nothing', async () => {
    const base = {
      name: 'x',
      issuer: gh.issuer,
      audiences: ['a'],
      subject: 'repo:acme/shop:*',
      scopes: ['secrets:read'],
    };
    for (const [payload, text] of [
      [{ ...base, audiences: [] }, 'at least one audience'],
      [{ ...base, audiences: undefined }, 'audiences is required'],
      [{ ...base, subject: '*' }, 'would trust every workload'],
      [{ ...base, subject: '*', claims: { repository_owner: '*' } }, 'would trust every workload'],
      [{ ...base, issuer: 'not a url' }, 'issuer is not a URL'],
      [{ ...base, issuer: `${gh.issuer}?x=1` }, 'without query'],
      [{ ...base, name: 'a:b' }, 'name must be'],
      [{ ...base, ttlSeconds: 7200 }, 'at most 3600'],
      [{ ...base, ttlSeconds: 10 }, 'at least 60'],
      [{ ...base, scopes: ['secrets:admin'] }, 'each scope must be one of'],
      [{ ...base, keys: ['lower'] }, 'prefix pattern'],
      [{ ...base, extra: 1 }, 'Unknown field'],
      [{ ...base, claims: { '/kubernetes.io//namespace': 'x' } }, 'claim "/kubernetes.io//namespace": '],
      [{ ...base, claims: { '/': 'x' } }, 'JSON Pointer'],
      [{ ...base, claims: { '/kubernetes.io/a~2b': 'x' } }, 'JSON Pointer'],
      [{ ...base, claims: { '/a/b/c/d/e/f/g/h/i': 'x' } }, 'JSON Pointer'],
      [{ ...base, claims: { '/kubernetes.io/name space': 'x' } }, 'JSON Pointer'],
      [{ ...base, claims: { '': 'x' } }, 'JSON Pointer'],
    ] as const) {
      const r = await t.app.inject({ method: 'POST', url: '/api/auth/trusts', headers: t.auth(), payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().message).toContain(text);
    }
    expect(await t.db.query('SELECT 1 FROM oidc_trusts')).toEqual([]);
  });

  it('requires an https issuer unless OIDC_ALLOW_HTTP_ISSUERS is set', async () => {
    const strict = await createTestApp({ env: { AUDIT_SEAL_INTERVAL_MS: '0' } });
    try {
      const res = await strict.app.inject({
        method: 'POST',
        url: '/api/auth/trusts',
        headers: strict.auth(),
        payload: { name: 'x', issuer: gh.issuer, audiences: ['a'], subject: 's', scopes: ['secrets:read'] },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ message: 'issuer must be an https:// URL' });
      expect(res.json().nextActions).toContain('OIDC_ALLOW_HTTP_ISSUERS');
    } finally {
      await strict.close();
    }
  });
});

describe('token exchange', () => {
  it('trades a GitHub-shaped ID token for a scoped credential that reads secrets, audited as the workload', async () => {
    await githubTrust();
    const value = secretValue();
    expect((await admin.create({ key: 'STRIPE_KEY', value })).statusCode).toBe(201);
    expect((await admin.create({ key: 'OTHER_KEY', value: secretValue() })).statusCode).toBe(201);
    const id = await gh.sign(githubClaims());
    const res = await exchange(id);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      scope: 'secrets:read secrets:list',
    });
    expect(body.access_token).toMatch(/^iw_[0-9a-f]{64}$/);
    expect(body.expires_in).toBeGreaterThan(890);
    expect(body.expires_in).toBeLessThanOrEqual(900);

    const read = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/STRIPE_KEY',
      headers: bearer(body.access_token),
    });
    expect(read.statusCode).toBe(200);
    expect(read.json().value).toBe(value);
    const viaHeader = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/STRIPE_KEY',
      headers: { 'x-api-key': body.access_token },
    });
    expect(viaHeader.statusCode).toBe(200);
    // The grant is the trust's: outside its key patterns and scopes it is refused.
    const other = await t.app.inject({
      method: 'GET',
      url: '/api/secrets/OTHER_KEY',
      headers: bearer(body.access_token),
    });
    expect(other.statusCode).toBe(403);
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: bearer(body.access_token),
      payload: { key: 'STRIPE_NEW', value: 'x' },
    });
    expect(write.statusCode).toBe(403);
    expect(write.json().message).toContain('oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main');
    const admins = await t.app.inject({
      method: 'GET',
      url: '/api/access-keys',
      headers: bearer(body.access_token),
    });
    expect(admins.statusCode).toBe(403);
    const who = await t.app.inject({
      method: 'GET',
      url: '/api/auth/whoami',
      headers: bearer(body.access_token),
    });
    expect(who.json()).toEqual({
      kind: 'workload',
      name: 'oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main',
      scopes: ['secrets:read', 'secrets:list'],
      keys: ['STRIPE_*'],
    });

    const workload = 'oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main';
    const reads = await t.db.query<{ actor: string; key: string; outcome: string }>(
      `SELECT actor, key, outcome FROM audit_log WHERE action = 'secret.read' ORDER BY id`,
    );
    expect(reads).toEqual([
      { actor: workload, key: 'STRIPE_KEY', outcome: 'success' },
      { actor: workload, key: 'STRIPE_KEY', outcome: 'success' },
      { actor: workload, key: 'OTHER_KEY', outcome: 'denied' },
    ]);
    const rows = await exchangeRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.actor).toBe(workload);
    expect(rows[0]?.outcome).toBe('success');
    expect(rows[0]?.key).toContain(`iss="${gh.issuer}"`);
    expect(rows[0]?.key).toContain('sub="repo:acme/shop:ref:refs/heads/main"');
    expect(rows[0]?.key).toMatch(/jti="[0-9a-f-]{36}"/);
    // Neither the ID token nor the issued credential is stored anywhere but as a digest.
    const dump = JSON.stringify(await t.db.query('SELECT * FROM audit_log'));
    expect(dump).not.toContain(id.split('.')[2]);
    expect(dump).not.toContain(body.access_token);
  });

  it('accepts the form-encoded request of RFC 8693 and a narrower scope', async () => {
    await githubTrust();
    const res = await exchange(await gh.sign(githubClaims()), { scope: 'secrets:list' }, true);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().scope).toBe('secrets:list');
    const wider = await exchange(await gh.sign(githubClaims()), { scope: 'secrets:write' }, true);
    expect(wider.statusCode).toBe(403);
    expect(wider.json().message).toContain('does not grant');
    // The form parser belongs to this route alone: the rest of the API stays JSON only.
    const other = await t.app.inject({
      method: 'POST',
      url: '/api/secrets',
      headers: { ...t.auth(), 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'key=A&value=b',
    });
    expect(other.statusCode).toBe(415);
  });

  it('trades a Kubernetes service-account token (ES256, aud as an array)', async () => {
    await trust({
      name: 'k8s-payments',
      issuer: k8s.issuer,
      audiences: ['secrets-service'],
      subject: 'system:serviceaccount:payments:*',
      scopes: ['secrets:read'],
      ttlSeconds: 120,
    });
    const res = await exchange(await k8s.sign(kubernetesClaims()));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().expires_in).toBeLessThanOrEqual(120);
    const who = await t.app.inject({
      method: 'GET',
      url: '/api/auth/whoami',
      headers: bearer(res.json().access_token),
    });
    expect(who.json().name).toBe('oidc:k8s-payments:system:serviceaccount:payments:deployer');
    const wrongNs = await exchange(
      await k8s.sign(kubernetesClaims('secrets-service', { sub: 'system:serviceaccount:default:deployer' })),
    );
    expect(wrongNs.statusCode).toBe(403);
  });

  it('binds nested claims by JSON Pointer (Kubernetes: namespace, service account), refusing a mismatch', async () => {
    await trust({
      name: 'k8s-nested',
      issuer: k8s.issuer,
      audiences: ['secrets-service'],
      subject: 'system:serviceaccount:*',
      claims: { '/kubernetes.io/namespace': 'payments', '/kubernetes.io/serviceaccount/name': 'deploy*' },
      scopes: ['secrets:read'],
    });
    const listed = await admin.req('GET', '/api/auth/trusts/k8s-nested');
    expect(listed.json().claims).toEqual({
      '/kubernetes.io/namespace': 'payments',
      '/kubernetes.io/serviceaccount/name': 'deploy*',
    });
    const ok = await exchange(await k8s.sign(kubernetesClaims()));
    expect(ok.statusCode, ok.body).toBe(200);

    const otherNs = kubernetesClaims('secrets-service', { sub: 'system:serviceaccount:billing:deployer' });
    otherNs['kubernetes.io'].namespace = 'billing';
    const wrongNs = await exchange(await k8s.sign(otherNs));
    expect(wrongNs.statusCode).toBe(403);
    expect(wrongNs.json().message).toContain('/kubernetes.io/namespace="billing" does not match');

    const otherSa = kubernetesClaims();
    otherSa['kubernetes.io'].serviceaccount.name = 'builder';
    expect((await exchange(await k8s.sign(otherSa))).statusCode).toBe(403);

    // The nested object itself, or a path that stops short of a string, is no string claim.
    const flat = kubernetesClaims();
    (flat as Record<string, unknown>)['kubernetes.io'] = { namespace: { name: 'payments' } };
    const noString = await exchange(await k8s.sign(flat));
    expect(noString.statusCode).toBe(403);
    expect(noString.json().message).toContain('no string claim /kubernetes.io/namespace');
    const rows = await exchangeRows();
    expect(rows.map((r) => r.outcome)).toEqual(['success', 'denied', 'denied', 'denied']);
  });

  it('reads "~1" in a pointer as "/" and a digit segment as an array index; a top-level name stays literal', async () => {
    await trust({
      name: 'gh-pointer',
      issuer: gh.issuer,
      audiences: ['secrets-service'],
      subject: 'repo:acme/shop:*',
      claims: {
        '/ci~1meta/groups/1': 'deployers',
        // a top-level claim whose name has dots: not split into a path
        'acme.team': 'payments',
      },
      scopes: ['secrets:read'],
    });
    const claims = (groups: string[]) =>
      githubClaims('secrets-service', { 'ci/meta': { groups }, 'acme.team': 'payments' });
    expect((await exchange(await gh.sign(claims(['readers', 'deployers'])))).statusCode).toBe(200);
    const denied = await exchange(await gh.sign(claims(['deployers', 'readers'])));
    expect(denied.statusCode).toBe(403);
    expect(denied.json().message).toContain('/ci~1meta/groups/1="readers" does not match');
    const nested = githubClaims('secrets-service', {
      'ci/meta': { groups: ['x', 'deployers'] },
      acme: { team: 'payments' },
    });
    const notLiteral = await exchange(await gh.sign(nested));
    expect(notLiteral.statusCode).toBe(403);
    expect(notLiteral.json().message).toContain('no string claim acme.team');
  });

  it('picks the matching trust among several of one issuer, and asks for a name when two match', async () => {
    await githubTrust();
    await githubTrust({ name: 'gh-staging', subject: 'repo:acme/shop:environment:staging', claims: {} });
    const staging = await exchange(
      await gh.sign(
        githubClaims('secrets-service', {
          sub: 'repo:acme/shop:environment:staging',
          ref: 'refs/heads/staging',
        }),
      ),
    );
    expect(staging.statusCode, staging.body).toBe(200);
    await githubTrust({ name: 'gh-any-branch', claims: { repository_id: '123456' } });
    const both = await exchange(await gh.sign(githubClaims()));
    expect(both.statusCode).toBe(400);
    expect(both.json().message).toContain('gh-any-branch, gh-deploy');
    const named = await exchange(await gh.sign(githubClaims()), { trust: 'gh-deploy' });
    expect(named.statusCode, named.body).toBe(200);
  });

  it('refuses an expired issued credential, and one whose trust was deleted (at once)', async () => {
    await githubTrust();
    const a = (await exchange(await gh.sign(githubClaims()))).json().access_token as string;
    const b = (await exchange(await gh.sign(githubClaims()))).json().access_token as string;
    expect((await t.app.inject({ method: 'GET', url: '/api/secrets', headers: bearer(a) })).statusCode).toBe(
      200,
    );
    // Expiry without waiting: the stored expiry of one token is moved into the past.
    await t.db.query(
      `UPDATE workload_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(convert_to($1, 'UTF8'))`,
      [a],
    );
    const expired = await t.app.inject({ method: 'GET', url: '/api/secrets', headers: bearer(a) });
    expect(expired.statusCode).toBe(401);
    expect(expired.json().message).toContain('workload token expired');
    expect(
      (await t.app.inject({ method: 'DELETE', url: '/api/auth/trusts/gh-deploy', headers: t.auth() }))
        .statusCode,
    ).toBe(200);
    const revoked = await t.app.inject({ method: 'GET', url: '/api/secrets', headers: bearer(b) });
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().message).toContain(
      'trust policy gh-deploy that issued this workload token was deleted',
    );
  });
});

describe('refusals: each a 4xx with a clear message and an audit row with its reason', () => {
  const cases: [string, () => Promise<string>, number, string, string][] = [
    ['wrong audience', () => gh.sign(githubClaims('someone-else')), 403, 'audience', 'reason=audience'],
    [
      'wrong issuer',
      () => k8s.sign(githubClaims()),
      401,
      'no trust policy accepts tokens from issuer',
      'reason=issuer',
    ],
    [
      'expired',
      () =>
        gh.sign(githubClaims('secrets-service', { iat: now() - 900, nbf: now() - 900, exp: now() - 120 })),
      401,
      'has expired',
      'reason=expired',
    ],
    [
      'not yet valid',
      () => gh.sign(githubClaims('secrets-service', { nbf: now() + 600, exp: now() + 900 })),
      401,
      'not valid yet',
      'reason=not_yet_valid',
    ],
    [
      'issued in the future',
      () => gh.sign(githubClaims('secrets-service', { iat: now() + 600, exp: now() + 900 })),
      401,
      'issued in the future',
      'reason=iat',
    ],
    [
      'subject mismatch',
      () => gh.sign(githubClaims('secrets-service', { sub: 'repo:evil/shop:ref:refs/heads/main' })),
      403,
      'subject',
      'reason=subject',
    ],
    [
      'claim mismatch (another branch)',
      () => gh.sign(githubClaims('secrets-service', { ref: 'refs/heads/feature' })),
      403,
      'ref="refs/heads/feature"',
      'reason=claim:ref',
    ],
    [
      'claim missing',
      () => gh.sign(githubClaims('secrets-service', { repository_id: null })),
      403,
      'no string claim repository_id',
      'reason=claim:repository_id',
    ],
    [
      'no exp',
      () => gh.sign(githubClaims('secrets-service', { exp: null })),
      401,
      'exp claim is missing',
      'reason=claim:exp',
    ],
    [
      'alg none',
      () =>
        Promise.resolve(
          new UnsecuredJWT({
            ...githubClaims(),
            iss: gh.issuer,
            iat: now(),
            exp: now() + 300,
            jti: 'n',
          }).encode(),
        ),
      401,
      'algorithm is not accepted',
      'reason=algorithm',
    ],
    [
      'HS256 signed with the public key (algorithm confusion)',
      async () => {
        const pub = await exportJWK(
          (await import('node:crypto')).createPublicKey({ key: gh.current.jwk as never, format: 'jwk' }),
        );
        const secret = new TextEncoder().encode(JSON.stringify(pub));
        return new SignJWT({ ...githubClaims(), iss: gh.issuer, jti: 'hs' })
          .setProtectedHeader({ alg: 'HS256', kid: gh.current.kid })
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(secret);
      },
      401,
      'algorithm is not accepted',
      'reason=algorithm',
    ],
    [
      'forged signature (another key, same kid)',
      async () => {
        const other = await startIssuer();
        try {
          return await other.sign({ ...githubClaims(), iss: gh.issuer }, { kid: gh.current.kid });
        } finally {
          await other.close();
        }
      },
      401,
      'signature does not verify',
      'reason=signature',
    ],
    ['not a JWT', () => Promise.resolve('not.a-jwt'), 401, 'not a JWT', 'reason=malformed'],
  ];
  const now = () => Math.floor(Date.now() / 1000);

  for (const [name, make, status, message, reason] of cases) {
    it(name, async () => {
      await githubTrust();
      const res = await exchange(await make());
      expect(res.statusCode, res.body).toBe(status);
      expect(res.json().message).toContain(message);
      const rows = await exchangeRows();
      expect(rows).toHaveLength(1);
      expect(rows[0]?.key).toContain(reason);
      expect(rows[0]?.outcome).toBe(status === 403 ? 'denied' : 'unauthenticated');
      expect(await t.db.query('SELECT 1 FROM workload_tokens')).toEqual([]);
    });
  }

  it('replayed jti: the second exchange of one token is refused', async () => {
    await githubTrust();
    const id = await gh.sign(githubClaims());
    expect((await exchange(id)).statusCode).toBe(200);
    const again = await exchange(id);
    expect(again.statusCode).toBe(401);
    expect(again.json().message).toContain('already exchanged');
    // Without a jti the token itself is the single-use id.
    const noJti = await gh.sign(githubClaims('secrets-service', { jti: null }));
    expect((await exchange(noJti)).statusCode).toBe(200);
    expect((await exchange(noJti)).statusCode).toBe(401);
    const rows = await exchangeRows();
    expect(rows.map((r) => r.outcome)).toEqual(['success', 'unauthenticated', 'success', 'unauthenticated']);
    expect(rows[1]?.key).toContain('reason=replay');
    expect(rows[1]?.actor).toBe('oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main');
  });

  it('a storm of unknown kids refetches the JWKS at most once per interval', async () => {
    await githubTrust();
    expect((await exchange(await gh.sign(githubClaims()))).statusCode).toBe(200);
    const before = gh.jwksFetches;
    // One after another (concurrent ones would share one fetch anyway), then at once.
    const storm = [];
    for (let i = 0; i < 20; i++)
      storm.push(await exchange(await gh.sign(githubClaims(), { kid: `random-${i}` })));
    storm.push(
      ...(await Promise.all(
        Array.from({ length: 20 }, async (_, i) =>
          exchange(await gh.sign(githubClaims(), { kid: `burst-${i}` })),
        ),
      )),
    );
    expect(storm.every((r) => r.statusCode === 401)).toBe(true);
    expect(storm[0]?.json().message).toContain('no key of');
    expect(gh.jwksFetches - before).toBeLessThanOrEqual(1);
  });

  it('issuer down: 503 with Retry-After, saying which issuer and why, never a 500', async () => {
    const down = await startIssuer({ path: '/down' });
    await trust({
      name: 'down',
      issuer: down.issuer,
      audiences: ['secrets-service'],
      subject: 'repo:acme/shop:*',
      scopes: ['secrets:read'],
    });
    down.down(true);
    const res = await exchange(await down.sign(githubClaims()));
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(res.json().message).toContain(`The identity provider ${down.issuer} could not be reached`);
    expect(res.json().message).toContain('HTTP 503');
    await down.close();
    const closed = await exchange(await down.sign(githubClaims()));
    expect(closed.statusCode).toBe(503);
    expect(closed.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(closed.json().message).toContain('ECONNREFUSED');
    const rows = await exchangeRows();
    expect(rows.map((r) => r.outcome)).toEqual(['unavailable', 'unavailable']);
    expect(rows[0]?.key).toContain('reason=issuer_unavailable');
  });

  it('our storage failing as the token is minted: 503 with Retry-After, one audit row, no issuer blamed', async () => {
    await githubTrust();
    // The mint's INSERT fails as PostgreSQL reports a lost serialization conflict (40001),
    // raised by the database itself from a trigger on the table.
    await t.db.query(
      `CREATE FUNCTION test_mint_conflict() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$`,
    );
    await t.db.query(
      `CREATE TRIGGER test_mint_conflict BEFORE INSERT ON workload_tokens
       FOR EACH ROW EXECUTE FUNCTION test_mint_conflict()`,
    );
    try {
      const res = await exchange(await gh.sign(githubClaims()));
      expect(res.statusCode, res.body).toBe(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.json().error).toBe('SERVICE_UNAVAILABLE');
      expect(await t.db.query('SELECT 1 FROM workload_tokens')).toEqual([]);
      // The mint's own row (written as its transaction failed), and no second one.
      const rows = await exchangeRows();
      expect(rows).toHaveLength(1);
      // Unavailable, as the answer says: not 'error', the outcome of a bug.
      expect(rows[0]?.outcome).toBe('unavailable');
      expect(rows[0]?.actor).toBe('oidc:gh-deploy:repo:acme/shop:ref:refs/heads/main');
      expect(rows[0]?.key).toContain('trust=gh-deploy');
      expect(rows[0]?.key).not.toContain('reason=');
    } finally {
      await t.db.query('DROP TRIGGER test_mint_conflict ON workload_tokens');
      await t.db.query('DROP FUNCTION test_mint_conflict()');
    }
  });

  it('bad requests: 400 naming the field', async () => {
    for (const [payload, text] of [
      [{ grant_type: 'password', subject_token: 'x', subject_token_type: JWT_TYPE }, 'grant_type must be'],
      [{ grant_type: TOKEN_EXCHANGE, subject_token_type: JWT_TYPE }, 'subject_token is required'],
      [
        { grant_type: TOKEN_EXCHANGE, subject_token: 'x', subject_token_type: 'saml' },
        'subject_token_type must be',
      ],
    ] as const) {
      const r = await t.app.inject({ method: 'POST', url: '/api/auth/token', payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().message).toContain(text);
    }
  });
});

describe('the signing keys', () => {
  let second: TestApp | undefined;
  afterAll(async () => second?.close());

  it('follows a key rotation once the refetch interval allows it', async () => {
    second = await createTestApp({
      env: { OIDC_ALLOW_HTTP_ISSUERS: 'true', OIDC_JWKS_REFETCH_INTERVAL_MS: '0' },
    });
    const issuer = await startIssuer({ path: '/rot' });
    try {
      const res = await second.app.inject({
        method: 'POST',
        url: '/api/auth/trusts',
        headers: second.auth(),
        payload: {
          name: 'rot',
          issuer: issuer.issuer,
          audiences: ['secrets-service'],
          subject: 'repo:acme/shop:*',
          scopes: ['secrets:read'],
        },
      });
      expect(res.statusCode).toBe(201);
      const ex = async (token: string) =>
        (second as TestApp).app.inject({
          method: 'POST',
          url: '/api/auth/token',
          payload: { grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: JWT_TYPE },
        });
      expect((await ex(await issuer.sign(githubClaims()))).statusCode).toBe(200);
      const old = issuer.current;
      await issuer.rotate('EdDSA', true);
      expect((await ex(await issuer.sign(githubClaims()))).statusCode).toBe(200);
      // The retired key is gone from the refetched set.
      const stale = await ex(await issuer.sign(githubClaims(), { key: old }));
      expect(stale.statusCode).toBe(401);
    } finally {
      await issuer.close();
    }
  });
});

describe('replay store unreachable (REDIS_URL names a port nothing listens on)', () => {
  let app: TestApp | undefined;
  afterAll(async () => app?.close());

  it('fails the exchange closed with 503 and Retry-After, audited as our replay store failing, not the issuer', async () => {
    app = await createTestApp({
      env: { OIDC_ALLOW_HTTP_ISSUERS: 'true', REDIS_URL: `redis://127.0.0.1:${await freePort()}` },
    });
    const a = app;
    await githubTrust({}, a);
    const res = await exchange(await gh.sign(githubClaims()), {}, false, a);
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(res.json().message).toContain('replay store');
    expect(await a.db.query('SELECT 1 FROM workload_tokens')).toEqual([]);
    const rows = await exchangeRows(a);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.outcome).toBe('unavailable');
    expect(rows[0]?.key).toContain('reason=replay_store_unavailable');
    expect(rows[0]?.key).not.toContain('issuer_unavailable');
  });
});

describe('replay protection shared through Redis (REDIS_URL)', () => {
  const apps: TestApp[] = [];
  afterAll(async () => {
    for (const a of apps) await a.close();
  });

  it('a token exchanged on one instance is refused on another', async () => {
    const namespace = `oidc-test-${Math.random().toString(36).slice(2)}:`;
    const env = {
      OIDC_ALLOW_HTTP_ISSUERS: 'true',
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      RATE_LIMIT_NAMESPACE: namespace,
    };
    for (let i = 0; i < 2; i++) apps.push(await createTestApp({ env }));
    const ex = (a: TestApp, token: string) =>
      a.app.inject({
        method: 'POST',
        url: '/api/auth/token',
        payload: { grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: JWT_TYPE },
      });
    for (const a of apps) {
      const res = await a.app.inject({
        method: 'POST',
        url: '/api/auth/trusts',
        headers: a.auth(),
        payload: {
          name: 'gh',
          issuer: gh.issuer,
          audiences: ['secrets-service'],
          subject: 'repo:acme/shop:*',
          scopes: ['secrets:read'],
        },
      });
      expect(res.statusCode).toBe(201);
    }
    const id = await gh.sign(githubClaims());
    expect((await ex(apps[0] as TestApp, id)).statusCode).toBe(200);
    const replay = await ex(apps[1] as TestApp, id);
    expect(replay.statusCode).toBe(401);
    expect(replay.json().message).toContain('already exchanged');
    expect((await ex(apps[1] as TestApp, await gh.sign(githubClaims()))).statusCode).toBe(200);
  });
});
