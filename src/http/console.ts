import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';
import { CONSOLE_PAGES, CONSOLE_PAGES_WITH_ITEM } from './console-pages.js';

/**
 * The web console's built files (`npm run console:build`, Vite, sources in console/). The
 * path is the same from src/http (tsx) and dist/http (compiled): both sit two levels below
 * the repository root, and the Vite output lives beside the compiled server in dist/console.
 */
export const CONSOLE_DIR = fileURLToPath(new URL('../../dist/console/', import.meta.url));

/**
 * The console's own policy: everything from this origin, nothing inline, no framing.
 * Set on every /console response by this scope's onSend hook, which runs after any global
 * header plugin (helmet) has set its defaults, so this one wins for the console.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Serves the console at /console from the same process as the API (no other origin involved). */
export async function consoleRoutes(
  app: FastifyInstance,
  opts: { root?: string; loginEnabled?: boolean } = {},
) {
  const root = opts.root ?? CONSOLE_DIR;
  app.addHook('onSend', async (_req, reply) => {
    reply.header('content-security-policy', CONSOLE_CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cross-origin-opener-policy', 'same-origin');
  });
  // What the sign-in page should offer: the username/password form only where the login
  // route exists (ROOT_ADMIN_USERNAME/PASSWORD set), so nobody types a password into a form
  // that can only answer "not configured". Public: it says no more than the route's 404.
  app.get('/console/config.json', { schema: { hide: true } }, async () => ({
    login: opts.loginEnabled === true,
  }));
  if (!existsSync(`${root}/index.html`)) {
    // `npm start` builds it (prestart); a bare `node dist/main.js` without a build says how.
    app.get('/console', { schema: { hide: true } }, async () => {
      throw errors.dependencyUnavailable(
        'The web console has not been built',
        'Run npm run console:build (npm start does it automatically), then reload',
      );
    });
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/console/',
    // index.html is served by the route below, for /console and /console/ alike.
    index: false,
    // The bundle's file names carry content hashes; index.html is small and always revalidated.
    cacheControl: false,
    schemaHide: true,
  });
  app.get('/console', { schema: { hide: true } }, (_req, reply) => reply.sendFile('index.html'));
  // The console's own URLs (console/src/route.ts) are pages of the same app: a reload or a
  // pasted link gets index.html, and the app shows the view the URL names.
  for (const page of CONSOLE_PAGES) {
    app.get(`/console/${page}`, { schema: { hide: true } }, (_req, reply) => reply.sendFile('index.html'));
    if (CONSOLE_PAGES_WITH_ITEM.includes(page))
      app.get(`/console/${page}/:item`, { schema: { hide: true } }, (_req, reply) =>
        reply.sendFile('index.html'),
      );
  }
}
