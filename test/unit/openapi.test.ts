import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { generateOpenApi } from '../../scripts/write-openapi.js';

it('the committed openapi/openapi.json matches the routes (run npm run openapi after changing them)', async () => {
  const committed = await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8');
  expect(JSON.parse(committed)).toEqual(JSON.parse(await generateOpenApi()));
}, 120_000); // builds a whole app on PGlite: slow on a loaded machine

it('documents every secrets route with its security requirement and the error schema', async () => {
  const doc = JSON.parse(await generateOpenApi());
  for (const [path, methods] of [
    ['/api/secrets', ['get', 'post']],
    ['/api/secrets/{key}', ['get', 'put', 'delete']],
    ['/api/secrets/{key}/versions', ['get']],
    ['/api/secrets/{key}/rollback', ['post']],
    ['/api/secrets/{key}/restore', ['post']],
    ['/api/secrets/export', ['get']],
    ['/api/secrets/render', ['post']],
  ] as const) {
    for (const m of methods) {
      const op = doc.paths[path][m];
      expect(op, `${m} ${path}`).toBeDefined();
      // Secrets routes accept an admin JWT or an access key (as bearer token or x-api-key).
      expect(op.security).toEqual([{ bearerAuth: [] }, { apiKey: [] }]);
    }
  }
  for (const [path, methods] of [
    ['/api/access-keys', ['get', 'post']],
    ['/api/access-keys/{id}', ['delete']],
    ['/api/audit', ['get']],
    ['/api/audit/verify', ['get']],
    ['/api/keys/status', ['get']],
    ['/api/keys/rewrap', ['post']],
  ] as const) {
    for (const m of methods) {
      // Admin only.
      expect(doc.paths[path][m].security, `${m} ${path}`).toEqual([{ bearerAuth: [] }]);
    }
  }
  expect(doc.components.securitySchemes.apiKey).toMatchObject({
    type: 'apiKey',
    in: 'header',
    name: 'x-api-key',
  });
  expect(doc.components.schemas.ErrorResponse.required).toEqual(['error', 'message', 'statusCode']);
  expect(doc.components.securitySchemes.bearerAuth.scheme).toBe('bearer');
}, 120_000);
