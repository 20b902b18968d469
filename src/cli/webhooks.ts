import type { Command } from 'commander';
import type { SecretsClient, WebhookPatch } from '../client/index.js';
import { isKeyPrefix } from '../secret-names.js';
import { UsageError } from './exit-codes.js';
import { maskForActions } from './output.js';
import { deleteCommand, listAction } from './resource-commands.js';

/**
 * `secrets webhooks ...`: webhook subscriptions (admin; docs/events.md). The signing secret
 * (whsec_...) is printed once, by `create` and `rotate`, to stdout and nowhere else.
 */

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface WebhookCommandDeps {
  client: () => Promise<SecretsClient>;
  status: (line: string) => void;
  tty: () => boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function webhookId(id: string): string {
  if (!UUID_RE.test(id))
    throw new UsageError(`invalid webhook id ${JSON.stringify(id)}: a UUID (secrets webhooks list)`);
  return id;
}

function prefixes(list: string[] | undefined): string[] | undefined {
  for (const p of list ?? [])
    if (!isKeyPrefix(p))
      throw new UsageError(`invalid --prefix ${JSON.stringify(p)}: use A-Z, 0-9 and _ (e.g. APP_)`);
  return list;
}

const json = (x: unknown) => process.stdout.write(`${JSON.stringify(x, null, 2)}\n`);

export function addWebhookCommands(program: Command, { client, status, tty }: WebhookCommandDeps): void {
  const webhooks = program
    .command('webhooks')
    .description('webhook subscriptions (admin): signed change events sent to your URL (docs/events.md)');

  listAction(webhooks.command('list').description('list the webhook subscriptions'), {
    lines: 'one id a line',
    tty,
    fetch: async () => (await client()).webhooks.list(),
    columns: {
      ID: (w) => w.id,
      URL: (w) => w.url,
      ENABLED: (w) => (w.enabled ? 'yes' : `no${w.disabledReason ? ` (${w.disabledReason})` : ''}`),
      EVENTS: (w) => (w.eventTypes.length > 3 ? `${w.eventTypes.length} types` : w.eventTypes.join(',')),
      PREFIXES: (w) => w.keyPrefixes.join(',') || 'all',
      FAILURES: (w) => String(w.consecutiveFailures),
    },
    line: (w) => w.id,
  });

  webhooks
    .command('create')
    .description('subscribe a URL; prints the signing secret (whsec_...) once: store it in the receiver')
    .argument('<URL>', "the receiver's https:// URL")
    .option('--event <type>', 'an event type to send (repeatable; default: all)', collect)
    .option('--prefix <prefix>', 'only keys starting with this (repeatable; default: every key)', collect)
    .option('--description <text>', 'what it is for')
    .option('--json', 'print the whole answer as JSON (the secret included)')
    .action(
      async (
        url: string,
        o: { event?: string[]; prefix?: string[]; description?: string; json?: boolean },
      ) => {
        const created = await (await client()).webhooks.create({
          url,
          ...(o.event ? { eventTypes: o.event as never } : {}),
          ...(o.prefix ? { keyPrefixes: prefixes(o.prefix) } : {}),
          ...(o.description !== undefined ? { description: o.description } : {}),
        });
        maskForActions([created.secret]);
        if (o.json) json(created);
        else process.stdout.write(`${created.secret}\n`);
        status(`created webhook ${created.id}: the signing secret is shown only now`);
      },
    );

  webhooks
    .command('update')
    .description('change a subscription: URL, event types, prefixes, description, enabled')
    .argument('<ID>')
    .option('--url <url>', 'a new receiver URL')
    .option('--event <type>', 'the event types to send (repeatable; replaces the list)', collect)
    .option('--prefix <prefix>', 'the key prefixes (repeatable; replaces the list)', collect)
    .option('--all-keys', 'send events of every key (clears the prefixes)')
    .option('--description <text>', 'what it is for')
    .option('--enable', 'enable it (also after it was disabled for failing)')
    .option('--disable', 'disable it: nothing is queued for it until enabled')
    .option('--json', 'print the subscription as JSON')
    .action(
      async (
        id: string,
        o: {
          url?: string;
          event?: string[];
          prefix?: string[];
          allKeys?: boolean;
          description?: string;
          enable?: boolean;
          disable?: boolean;
          json?: boolean;
        },
      ) => {
        if (o.enable && o.disable) throw new UsageError('--enable and --disable exclude each other');
        if (o.allKeys && o.prefix) throw new UsageError('--all-keys and --prefix exclude each other');
        const patch: WebhookPatch = {
          ...(o.url !== undefined ? { url: o.url } : {}),
          ...(o.event ? { eventTypes: o.event as never } : {}),
          ...(o.prefix ? { keyPrefixes: prefixes(o.prefix) } : {}),
          ...(o.allKeys ? { keyPrefixes: [] } : {}),
          ...(o.description !== undefined ? { description: o.description } : {}),
          ...(o.enable ? { enabled: true } : o.disable ? { enabled: false } : {}),
        };
        if (Object.keys(patch).length === 0)
          throw new UsageError(
            'nothing to change: give --url, --event, --prefix, --all-keys, --description, --enable or --disable',
          );
        const w = await (await client()).webhooks.update(webhookId(id), patch);
        if (o.json) json(w);
        status(`updated webhook ${w.id}`);
      },
    );

  webhooks
    .command('rotate')
    .description(
      'a new signing secret, printed once; the old one keeps signing alongside it for a grace period',
    )
    .argument('<ID>')
    .option('--json', 'print the answer as JSON (the secret included)')
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await (await client()).webhooks.rotateSecret(webhookId(id));
      maskForActions([r.secret]);
      if (o.json) json(r);
      else process.stdout.write(`${r.secret}\n`);
      status(`rotated webhook ${id}: the previous secret signs too until ${r.previousSecretRetiresAt}`);
    });

  deleteCommand(webhooks, {
    description: 'delete a subscription and its pending deliveries',
    argument: '<ID>',
    noun: 'webhook',
    remove: async (id) => (await client()).webhooks.remove(webhookId(id)),
    status,
  });

  listAction(
    webhooks
      .command('deliveries')
      .description("a subscription's delivery log, newest first: status, attempts, last answer")
      .argument('<ID>'),
    {
      lines: 'one id a line',
      tty,
      fetch: async (id) => (await client()).webhooks.deliveries(webhookId(id)),
      columns: {
        ID: (d) => d.id,
        EVENT: (d) => d.eventType,
        KEY: (d) => d.key ?? '',
        STATUS: (d) => d.status,
        ATTEMPTS: (d) => String(d.attempts),
        LAST: (d) => (d.lastResponseStatus !== null ? String(d.lastResponseStatus) : (d.lastError ?? '')),
        LATENCY: (d) => (d.lastLatencyMs !== null ? `${d.lastLatencyMs}ms` : ''),
        CREATED: (d) => d.createdAt,
      },
      line: (d) => `${d.id}\t${d.status}\t${d.eventType}\t${d.key ?? ''}`,
    },
  );

  webhooks
    .command('redeliver')
    .description('send a delivery again (the same event, so the same webhook-id)')
    .argument('<ID>', 'the subscription')
    .argument('<DELIVERY_ID>', 'from secrets webhooks deliveries')
    .action(async (id: string, deliveryId: string) => {
      if (!/^[1-9][0-9]{0,17}$/.test(deliveryId))
        throw new UsageError(`invalid delivery id ${JSON.stringify(deliveryId)}: a number`);
      await (await client()).webhooks.redeliver(webhookId(id), deliveryId);
      status(`queued delivery ${deliveryId} of webhook ${id} again`);
    });
}
