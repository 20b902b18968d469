import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { secretValue } from '../helpers/secrets.js';
import { createTestServer, type TestServer } from '../helpers/server.js';
import { deliversToReceiver, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/**
 * `secrets webhooks ...` against a real server: create prints the whsec_ once, a receiver
 * verifies deliveries with it (the official standardwebhooks package), rotate prints a new
 * one, and update, deliveries, redeliver and delete do what they say; bad input is a usage
 * error (exit 2) before any request.
 */
let t: TestServer;
let receiver: Receiver;
beforeAll(async () => {
  t = await createTestServer({
    env: {
      AUDIT_SEAL_INTERVAL_MS: '0',
      ...deliversToReceiver,
    },
  });
  receiver = await startReceiver();
});
afterAll(async () => {
  await t?.close();
  await receiver?.close();
});

const env = () => ({ SECRETS_URL: t.url, SECRETS_TOKEN: t.token() });
const run = (args: string[]) => cli(args, { env: env() });

async function deliver() {
  for (let i = 0; i < 50; i++) {
    await t.app.webhookDispatcher.deliverNow();
    await t.app.webhookDispatcher.idle();
    const rows = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'`,
    );
    if (rows[0]?.n === 0) return;
  }
}

it('create, list, update, rotate, deliveries, redeliver, delete', async () => {
  const created = await run([
    'webhooks',
    'create',
    receiver.url,
    '--prefix',
    'CLI_',
    '--description',
    'ci hook',
  ]);
  expect(created.code, created.stderr).toBe(0);
  const secret = created.stdout.trim();
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
  expect(created.stderr).toMatch(/created webhook [0-9a-f-]{36}: the signing secret is shown only now/);
  const id = /created webhook ([0-9a-f-]{36})/.exec(created.stderr)![1]!;
  receiver.secrets.push(secret);

  const list = await run(['webhooks', 'list', '--format', 'json']);
  expect(list.code).toBe(0);
  const listed = JSON.parse(list.stdout) as { id: string; keyPrefixes: string[]; description: string }[];
  expect(listed).toEqual([expect.objectContaining({ id, keyPrefixes: ['CLI_'], description: 'ci hook' })]);
  // The secret is never listed again.
  expect(list.stdout).not.toContain(secret);
  expect((await run(['webhooks', 'list'])).stdout).toBe(`${id}\n`);

  await t.client.setSecret('CLI_ONE', secretValue());
  await t.client.setSecret('OTHER_ONE', secretValue());
  await deliver();
  expect(receiver.received.map((r) => r.body.data.key)).toEqual(['CLI_ONE']);

  const deliveries = await run(['webhooks', 'deliveries', id, '--format', 'json']);
  expect(deliveries.code).toBe(0);
  const log = JSON.parse(deliveries.stdout) as { id: string; status: string; eventId: string }[];
  expect(log).toEqual([expect.objectContaining({ status: 'delivered', eventId: receiver.received[0]!.id })]);
  expect((await run(['webhooks', 'deliveries', id])).stdout).toMatch(
    /^\d+\tdelivered\tsecret\.created\tCLI_ONE\n$/,
  );

  const again = await run(['webhooks', 'redeliver', id, log[0]!.id]);
  expect(again.code, again.stderr).toBe(0);
  await deliver();
  // The same event again: the same webhook-id.
  expect(receiver.received.map((r) => r.id)).toEqual([log[0]!.eventId, log[0]!.eventId]);

  // Rotation prints a new secret; the new one alone verifies the next delivery.
  const rotated = await run(['webhooks', 'rotate', id, '--json']);
  expect(rotated.code, rotated.stderr).toBe(0);
  const next = JSON.parse(rotated.stdout) as { secret: string; previousSecretRetiresAt: string };
  expect(next.secret).toMatch(/^whsec_/);
  expect(next.secret).not.toBe(secret);
  receiver.secrets.splice(0, receiver.secrets.length, next.secret);
  await t.client.setSecret('CLI_TWO', secretValue());
  await deliver();
  expect(receiver.rejected).toBe(0);
  expect(receiver.received.at(-1)!.body.data.key).toBe('CLI_TWO');

  const updated = await run(['webhooks', 'update', id, '--all-keys', '--event', 'secret.deleted', '--json']);
  expect(updated.code, updated.stderr).toBe(0);
  expect(JSON.parse(updated.stdout)).toMatchObject({ keyPrefixes: [], eventTypes: ['secret.deleted'] });
  const disabled = await run(['webhooks', 'update', id, '--disable']);
  expect(disabled.code).toBe(0);
  expect(disabled.stderr).toContain(`updated webhook ${id}`);

  const removed = await run(['webhooks', 'delete', id]);
  expect(removed.code).toBe(0);
  expect((await run(['webhooks', 'list', '--format', 'json'])).stdout.trim()).toBe('[]');
  // Gone: not found, exit code of a missing thing, not a usage error.
  const gone = await run(['webhooks', 'delete', id]);
  expect(gone.code).not.toBe(0);
  expect(gone.stderr).toContain('Webhook not found');
});

it('create --json prints the whole answer once; bad input is refused', async () => {
  const created = await run(['webhooks', 'create', receiver.url, '--event', 'secret.created', '--json']);
  expect(created.code, created.stderr).toBe(0);
  const body = JSON.parse(created.stdout) as { id: string; secret: string; eventTypes: string[] };
  expect(body.secret).toMatch(/^whsec_/);
  expect(body.eventTypes).toEqual(['secret.created']);

  const badId = await run(['webhooks', 'delete', 'not-a-uuid']);
  expect(badId).toMatchObject({ code: 2 });
  expect(badId.stderr).toContain('invalid webhook id');
  const badPrefix = await run(['webhooks', 'create', receiver.url, '--prefix', 'lower']);
  expect(badPrefix.code).toBe(2);
  expect(badPrefix.stderr).toContain('invalid --prefix');
  const nothing = await run(['webhooks', 'update', body.id]);
  expect(nothing.code).toBe(2);
  expect(nothing.stderr).toContain('nothing to change');
  const both = await run(['webhooks', 'update', body.id, '--enable', '--disable']);
  expect(both.code).toBe(2);
  // The server refuses what only it can judge (an unknown event type): 4xx, not a crash.
  const badType = await run(['webhooks', 'create', receiver.url, '--event', 'secret.nope']);
  expect(badType.code).not.toBe(0);
  expect(badType.stderr).toContain('event type');
  // A URL the server refuses (not http(s)).
  const badUrl = await run(['webhooks', 'create', 'ftp://example.com/x']);
  expect(badUrl.code).not.toBe(0);
});
