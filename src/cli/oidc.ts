import { UsageError } from './exit-codes.js';
import { readFile } from './fs.js';

/**
 * Where `--oidc` gets the platform's ID token, in this order:
 * - GitHub Actions: requested from ACTIONS_ID_TOKEN_REQUEST_URL with
 *   ACTIONS_ID_TOKEN_REQUEST_TOKEN for the audience (the job needs `permissions: id-token: write`);
 * - SECRETS_OIDC_TOKEN_FILE: a file holding it (a Kubernetes projected service-account token);
 * - SECRETS_OIDC_TOKEN: the token itself (GitLab CI `id_tokens:` sets such a variable).
 */
export async function platformIdToken(
  audience: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 30_000,
): Promise<{ token: string; from: string }> {
  const ghUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const ghToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (ghUrl && ghToken) {
    const url = new URL(ghUrl);
    url.searchParams.set('audience', audience);
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { authorization: `Bearer ${ghToken}`, accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new UsageError(
        `cannot get the GitHub Actions ID token from ACTIONS_ID_TOKEN_REQUEST_URL: ${cause}`,
      );
    }
    const body = (await res.json().catch(() => ({}))) as { value?: unknown };
    if (!res.ok || typeof body.value !== 'string') {
      throw new UsageError(
        `GitHub Actions refused the ID token request (HTTP ${res.status}): check the job has permissions: id-token: write`,
      );
    }
    return { token: body.value, from: 'GitHub Actions' };
  }
  if (env.SECRETS_OIDC_TOKEN_FILE) {
    const path = env.SECRETS_OIDC_TOKEN_FILE;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new UsageError(
        `cannot read SECRETS_OIDC_TOKEN_FILE ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    return { token: oneJwt(text, `SECRETS_OIDC_TOKEN_FILE ${path}`), from: path };
  }
  if (env.SECRETS_OIDC_TOKEN)
    return { token: oneJwt(env.SECRETS_OIDC_TOKEN, 'SECRETS_OIDC_TOKEN'), from: 'SECRETS_OIDC_TOKEN' };
  if (ghUrl) {
    throw new UsageError(
      '--oidc on GitHub Actions needs the job permission to request an ID token: add `permissions: id-token: write` to the job',
    );
  }
  throw new UsageError(
    '--oidc found no ID token: on GitHub Actions grant `permissions: id-token: write`; on GitLab CI set SECRETS_OIDC_TOKEN from id_tokens:; on Kubernetes set SECRETS_OIDC_TOKEN_FILE to the projected token path',
  );
}

function oneJwt(text: string, where: string): string {
  const token = text.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
    throw new UsageError(`${where} does not hold a JWT (an OIDC ID token has three dot-separated parts)`);
  }
  return token;
}
