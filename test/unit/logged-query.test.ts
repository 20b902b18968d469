import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { collectLoggedQuery, OneLineAccessLog } from '../../src/http/access-log.js';
import { installErrorHandling } from '../../src/http/error-handler.js';
import { unlogged } from '../../src/http/schemas.js';
import { createLogger, safeUrl } from '../../src/logger.js';

// The logged query parameters come from each route's own querystring schema (collected at
// registration), less the ones marked unlogged(); anything else is logged by name only.

const apps: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

async function appLoggingTo(lines: string[]) {
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const app = Fastify({
    loggerInstance: createLogger('info', sink) as FastifyBaseLogger,
    logController: new OneLineAccessLog(),
  });
  apps.push(app);
  app.setValidatorCompiler(validatorCompiler);
  collectLoggedQuery(app);
  // The app's own 404 handler, which names the path without its query.
  installErrorHandling(app);
  // Registered in a child scope, as every feature's routes are.
  await app.register(async (scope) => {
    scope.get(
      '/things',
      {
        schema: {
          querystring: z.object({
            page: z.coerce.number().optional(),
            signature: unlogged(z.string(), 'a signed-URL credential').optional(),
          }),
        },
      },
      async () => ({ ok: true }),
    );
    scope.get('/plain', async () => ({ ok: true }));
  });
  return app;
}

const urlOf = (line: string) => (JSON.parse(line) as { req?: { url?: string } }).req?.url;

it("logs a route's declared query parameters by value, its unlogged ones and undeclared ones by name", async () => {
  const lines: string[] = [];
  const app = await appLoggingTo(lines);
  const r = await app.inject({ url: '/things?page=2&signature=s3cr3t-sig&access_token=tok-123' });
  expect(r.statusCode).toBe(200);
  await app.inject({ url: '/plain?page=2' });
  await app.inject({ url: '/nowhere?page=2&token=tok-456' });
  const urls = lines.map(urlOf).filter(Boolean);
  expect(urls).toEqual([
    '/things?page=2&signature=[redacted]&access_token=[redacted]',
    '/plain?page=[redacted]',
    '/nowhere?page=[redacted]&token=[redacted]',
  ]);
  expect(lines.join('\n')).not.toMatch(/s3cr3t-sig|tok-123|tok-456/);
});

it('safeUrl without a route keeps the path and redacts every value', () => {
  expect(safeUrl('/a/b')).toBe('/a/b');
  expect(safeUrl('/a?x=1&y=%20z')).toBe('/a?x=[redacted]&y=[redacted]');
  expect(safeUrl('/a?x=1&y=2', new Set(['y']))).toBe('/a?x=[redacted]&y=2');
});
