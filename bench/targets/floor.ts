import Fastify from 'fastify';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/runtime.js';

/**
 * The floor for the read-path comparison (bench/pairs.ts): a bare Fastify server answering
 * every read with one primary-key SELECT through the same database layer, nothing else (no
 * auth, no crypto, no audit, no logging). The least any design can do per request. Depends
 * only on config and runtime, so the same file measures older versions of the service too.
 */
const config = loadConfig();
const db = await openDatabase(config);
const anyId =
  (await db.query<{ id: string }>('SELECT id FROM secrets LIMIT 1'))[0]?.id ??
  '00000000-0000-0000-0000-000000000000';
const app = Fastify({ logger: false });
app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
const floor = async () => {
  const rows = await db.query<{ id: string }>('SELECT id, key FROM secrets WHERE id = $1', [anyId]);
  return { id: rows[0]?.id ?? null };
};
app.get('/api/secrets/:key', floor);
app.put('/api/secrets/:key', floor);
app.get('/health', async () => ({ status: 'ok' }));
await app.listen({ host: '127.0.0.1', port: config.port });
const stop = async () => {
  await app.close();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
