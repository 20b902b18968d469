import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

/**
 * A real OIDC issuer on loopback for the workload-identity tests: discovery
 * (/.well-known/openid-configuration) and a JWKS over HTTP, keys generated per issuer with
 * jose, rotation, an outage switch, and a count of JWKS fetches. It also plays GitHub's
 * ID-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL) for the CLI tests.
 */

type Alg = 'RS256' | 'ES256' | 'EdDSA';
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

interface SigningKey {
  kid: string;
  alg: Alg;
  privateKey: PrivateKey;
  jwk: JWK;
}

export interface LocalIssuer {
  /** http://127.0.0.1:<port>/<path>: the iss of its tokens. */
  issuer: string;
  /** Requests for the JWKS so far. */
  jwksFetches: number;
  /** The key that signs by default. */
  current: SigningKey;
  /** Signs claims (iss, iat, nbf, exp, jti filled in unless given; null drops one). */
  sign(claims?: Record<string, unknown>, opts?: { kid?: string; key?: SigningKey }): Promise<string>;
  /** A new current key; the old one stays published unless `dropOld`. */
  rotate(alg?: Alg, dropOld?: boolean): Promise<SigningKey>;
  /** Makes discovery and JWKS answer 503 (true) or normally again. */
  down(on: boolean): void;
  /** GitHub's ID-token request endpoint: its URL and the bearer token it requires. */
  actions: { url: string; requestToken: string; requests: { audience: string | null }[] };
  /** Claims the GitHub endpoint puts in the tokens it issues. */
  actionsClaims: Record<string, unknown>;
  close(): Promise<void>;
}

export async function newKey(alg: Alg = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

/** GitHub Actions ID-token claims (as GitHub documents them), for audience `aud`. */
export function githubClaims(aud = 'secrets-service', over: Record<string, unknown> = {}) {
  return {
    sub: 'repo:acme/shop:ref:refs/heads/main',
    aud,
    ref: 'refs/heads/main',
    sha: 'a1b2c3d4',
    repository: 'acme/shop',
    repository_owner: 'acme',
    repository_id: '123456',
    repository_owner_id: '7890',
    run_id: '42',
    run_number: '7',
    run_attempt: '1',
    actor: 'octocat',
    workflow: 'deploy',
    event_name: 'push',
    ref_type: 'branch',
    environment: 'production',
    job_workflow_ref: 'acme/shop/.github/workflows/deploy.yml@refs/heads/main',
    ...over,
  };
}

/** A Kubernetes projected service-account token's claims. */
export function kubernetesClaims(aud = 'secrets-service', over: Record<string, unknown> = {}) {
  return {
    sub: 'system:serviceaccount:payments:deployer',
    aud: [aud],
    'kubernetes.io': {
      namespace: 'payments',
      serviceaccount: { name: 'deployer', uid: randomUUID() },
      pod: { name: 'deployer-7d9f', uid: randomUUID() },
    },
    ...over,
  };
}

export async function startIssuer(opts: { path?: string; alg?: Alg } = {}): Promise<LocalIssuer> {
  const keys: SigningKey[] = [await newKey(opts.alg)];
  let isDown = false;
  const requestToken = `gha-${randomUUID()}`;
  let issuerUrl = '';
  const path = opts.path ?? '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/actions/token') {
      if (req.headers.authorization !== `Bearer ${requestToken}`) return json(401, { message: 'bad token' });
      const audience = url.searchParams.get('audience');
      self.actions.requests.push({ audience });
      void self
        .sign({ ...self.actionsClaims, aud: audience ?? 'https://github.com/acme' })
        .then((value) => json(200, { count: 1, value }));
      return;
    }
    if (isDown) return json(503, { error: 'down' });
    if (url.pathname === `${path}/.well-known/openid-configuration`) {
      return json(200, {
        issuer: issuerUrl,
        jwks_uri: `${issuerUrl}/jwks`,
        id_token_signing_alg_values_supported: ['RS256', 'ES256', 'EdDSA'],
      });
    }
    if (url.pathname === `${path}/jwks`) {
      self.jwksFetches++;
      return json(200, { keys: keys.map((k) => k.jwk) }, { 'cache-control': 'max-age=300' });
    }
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  issuerUrl = `http://127.0.0.1:${port}${path}`;
  const self: LocalIssuer = {
    issuer: issuerUrl,
    jwksFetches: 0,
    get current() {
      return keys[keys.length - 1] as SigningKey;
    },
    async sign(claims = {}, o = {}) {
      const key = o.key ?? self.current;
      const now = Math.floor(Date.now() / 1000);
      const full: Record<string, unknown> = {
        iss: issuerUrl,
        iat: now,
        nbf: now - 5,
        exp: now + 300,
        jti: randomUUID(),
        ...claims,
      };
      for (const [k, v] of Object.entries(full)) if (v === null) delete full[k];
      return new SignJWT(full as JWTPayload)
        .setProtectedHeader({ alg: key.alg, kid: o.kid ?? key.kid, typ: 'JWT' })
        .sign(key.privateKey);
    },
    async rotate(alg = 'RS256', dropOld = false) {
      const k = await newKey(alg);
      if (dropOld) keys.splice(0, keys.length);
      keys.push(k);
      return k;
    },
    down(on) {
      isDown = on;
    },
    actions: { url: `http://127.0.0.1:${port}/actions/token?api-version=2.0`, requestToken, requests: [] },
    actionsClaims: githubClaims(),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return self;
}
