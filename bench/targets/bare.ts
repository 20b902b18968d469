import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import pino from 'pino';
import { createAuditWriter } from '../../src/audit/writer.js';
import { loadConfig } from '../../src/config.js';
import { sealValue } from '../../src/crypto/envelope.js';
import { parseKeyring } from '../../src/crypto/keyring.js';
import { openDatabase } from '../../src/runtime.js';
import { readMarks } from '../../src/secrets/read-marks.js';
import { createSecretsRepository } from '../../src/secrets/repository.js';
import { revealBatcher } from '../../src/secrets/reveal-batch.js';

/**
 * The reference servers the service is measured against, same routes, same database:
 * - BENCH_MODE=ceiling runs exactly the SQL of our handlers (the repository's own
 *   statements: the read's plain SELECT (shared by concurrent reads) and its group-committed audit row through the same
 *   writer) with no auth, validation, crypto or logging;
 * - BENCH_MODE=floor answers every route with one primary-key SELECT.
 * Configured from the same environment as src/main.ts (DATABASE_URL or DATA_DIR, PORT).
 */
const mode = process.env.BENCH_MODE === 'floor' ? 'floor' : 'ceiling';
const config = loadConfig();
const db = await openDatabase(config);
const repo = createSecretsRepository();
const reveals = revealBatcher(repo);
// Every handler writes the audit row ours writes, in the same statement or transaction.
const who = { actor: 'admin:bench', requestId: 'bench', clientIp: '127.0.0.1' };
const writer = createAuditWriter({
  db,
  log: pino({ level: 'silent' }),
  windowMs: config.auditBatchWindowMs,
  maxRows: config.auditBatchMaxRows,
  concurrency: db.kind === 'pglite' ? 1 : config.auditBatchConcurrency,
  marks: readMarks,
});
// One sealed value made at start and stored again and again: the ceiling does no crypto per request.
const keyring = parseKeyring({ key: config.encryption.key });
const sealed = sealValue(keyring, { secretId: randomUUID(), key: 'CEILING', version: 1 }, 'ceiling-value');
const anyId = (await db.query<{ id: string }>('SELECT id FROM secrets LIMIT 1'))[0]?.id ?? randomUUID();

const app = Fastify({ logger: false });
app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
const floor = async () => {
  const rows = await db.query<{ id: string; key: string }>('SELECT id, key FROM secrets WHERE id = $1', [
    anyId,
  ]);
  return { id: rows[0]?.id ?? null };
};
type KeyReq = { Params: { key: string } };

if (mode === 'floor') {
  app.get('/api/secrets/:key', floor);
  app.get('/api/secrets', floor);
  app.post('/api/secrets', async (_req, reply) => reply.code(201).send(await floor()));
  app.put('/api/secrets/:key', floor);
} else {
  app.get<KeyReq>('/api/secrets/:key', async (req, reply) => {
    const row = await reveals.revealRow(db, 'default', req.params.key);
    if (!row) return reply.code(404).send({ error: 'NOT_FOUND' });
    await writer.record(
      [{ ...who, action: 'secret.read', key: row.key, version: row.version, outcome: 'success' }],
      { secretId: row.id, by: 'bench' },
    );
    return { key: row.key, value: row.ciphertext.toString('base64') };
  });
  app.get('/api/secrets', async () => {
    const rows = await repo.listPage(db, { environment: 'default', limit: 50, visible: { kind: 'all' } });
    await writer.record([{ ...who, action: 'secret.list', outcome: 'success' }]);
    return { secrets: rows.slice(0, 50).map((r) => ({ id: r.id, key: r.key })), nextCursor: null };
  });
  app.post('/api/secrets', async (req, reply) => {
    const key = JSON.parse(req.body as string).key as string;
    const id = randomUUID();
    const meta = {
      id,
      environment: 'default',
      key,
      description: null,
      isReserved: false,
      expiresAt: null,
      createdBy: 'bench',
    };
    const created = await db.transaction(async (tx) => {
      if (!(await repo.insertNew(tx, meta, sealed))) return false;
      await repo.appendAlongside(tx, [
        { audit: { ...who, action: 'secret.create', key, version: 1, outcome: 'success' } },
      ]);
      return true;
    });
    if (!created) return reply.code(409).send({ error: 'CONFLICT' });
    return reply.code(201).send({ success: true, id });
  });
  app.put<KeyReq>('/api/secrets/:key', async (req, reply) => {
    const found = await db.transaction(async (tx) => {
      const cur = await repo.findByKey(tx, 'default', req.params.key, { forUpdate: true });
      if (!cur) return false;
      const version = {
        number: cur.current_version + 1,
        sealed,
        createdBy: 'bench',
        keep: config.maxVersions,
      };
      await repo.updateRow(
        tx,
        cur,
        { version },
        {
          audit: {
            ...who,
            action: 'secret.update',
            key: cur.key,
            version: version.number,
            outcome: 'success',
          },
        },
      );
      return true;
    });
    return found ? { success: true } : reply.code(404).send({ error: 'NOT_FOUND' });
  });
}
app.get('/health', async () => ({ status: 'ok' }));
await app.listen({ host: '127.0.0.1', port: config.port });
const stop = async () => {
  await app.close();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
