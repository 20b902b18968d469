import type { TestApp } from './app.js';

export interface CreatedKey {
  id: string;
  token: string;
  name: string;
}

/** Creates an access key through the API as an admin. */
export async function createAccessKey(
  t: TestApp,
  body: {
    name?: string;
    scopes: string[];
    keys?: string[];
    environments?: string[];
    expiresAt?: string | null;
  },
): Promise<CreatedKey> {
  const name = body.name ?? `k-${Math.random().toString(36).slice(2, 8)}`;
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/access-keys',
    headers: t.auth(),
    payload: { ...body, name },
  });
  if (res.statusCode !== 201) throw new Error(`creating an access key failed: ${res.statusCode} ${res.body}`);
  const j = res.json();
  return { id: j.id, token: j.token, name };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const apiKey = (token: string) => ({ 'x-api-key': token });
